"""The fault suite at CI size, on PostgreSQL: two nodes, each its own machine (own boot id and data
folder), with wall clocks 45 s ahead and 45 s behind (GPUQ_CLOCK_OFFSET_SECONDS), and a web server run jobs
while executors, jobs, a node and the ticker are SIGKILLed, the database's connections are cut
(pg_terminate_backend), the database goes away behind a TCP proxy, a node is frozen (SIGSTOP) past its
node timeout and resumed, and the whole gpuq is SIGKILLed and started again. The checks come from each
job's own start/end records (with pid) and the database (tests/e2e/faults.py): 0 lost, 0 overlapping
executions, every re-run an attempt row with a reason, 0 GPUs held by finished jobs, 0 stray processes, the
skewed clocks seen off, the web serving. benchmarks/chaos.py runs the same harness long."""

import subprocess

import pytest

from tests.conftest import child_env
from tests.e2e import faults
from tests.e2e.conftest import postgresql_only

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    # SQLite: tests/e2e/test_chaos.py's SIGKILLs.
    postgresql_only("several machines and database faults: PostgreSQL"),
]

# Short leases so that a take-over costs seconds: the executor stops a silent job after 2 s, others take
# over after 2 + 1 + 1.5 s. A node is offline after 2 s of silence; the freeze outlasts that but stays
# below the take-over time (beyond it the README's limit applies).
LEASES = {
    "GPUQ_HEARTBEAT_SECONDS": "0.3",
    "GPUQ_LEASE_SECONDS": "2",
    "GPUQ_KILL_GRACE_SECONDS": "1",
    "GPUQ_LEASE_MARGIN_SECONDS": "1.5",
    "GPUQ_NODE_TIMEOUT_SECONDS": "2",
    "GPUQ_DISPATCH_TIMEOUT_SECONDS": "10",  # a loaded machine may take seconds to start an executor
    "GPUQ_LOG_LEVEL": "WARNING",  # the nodes' logs: chaos-N.log in the work folder
}
ASKED = {"worker": 2, "job": 2, "node": 1, "tick": 1, "connection": 2, "outage": 1, "freeze": 1, "gpuq": 1}


def test_every_fault_at_once_loses_no_job_runs_none_twice_at_once_and_leaks_nothing(root, tmp_path):
    report = faults.run(
        user=root,
        jobs=16,
        asked=ASKED,
        workdir=tmp_path / "chaos",
        env=child_env(),
        lease_env=LEASES,
        nodes=2,
        gpus_per_node=2,
        seed=1,
        timeout=240,
        freeze_seconds=(2.5, 3),
        outage_seconds=(1, 3),
        gpuq_down_seconds=(0.5, 1.5),
        skews={0: 45, 1: -45},
        mean_duration=1.5,
    )
    print(report)
    assert report.ok, report  # every fault made, every promise kept
    assert report.statuses == {"completed": 16}  # every fault is survivable
    assert report.attempts > 16  # the faults did cost attempts: the test tested something


LISTING = """\
15 chaos 5433 online postgres /var/lib/postgresql/15/chaos /var/log/postgresql/postgresql-15-chaos.log
15 main  5432 online postgres /var/lib/postgresql/15/main  /var/log/postgresql/postgresql-15-main.log
"""


def test_the_restarted_cluster_is_the_one_on_the_databases_port_not_main():
    assert faults.postgresql_cluster(5433, LISTING) == ("15", "chaos")
    assert faults.postgresql_cluster(5432, LISTING) == ("15", "main")
    with pytest.raises(LookupError, match="port 6543"):
        faults.postgresql_cluster(6543, LISTING)


def test_the_cluster_of_the_test_database_is_found_by_its_port():
    from django.db import connection

    port = str(connection.settings_dict["PORT"] or 5432)
    version, name = faults._database_cluster()
    listed = {
        tuple(line.split()[:3])
        for line in subprocess.check_output(["pg_lsclusters", "--no-header"], text=True).splitlines()
    }
    assert (version, name, port) in listed
