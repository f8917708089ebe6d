"""Two nodes as two machines (each its own boot id and data folder) sharing one database: a live node's
job is left alone by the other; a node frozen whole (SIGSTOP) past its take-over time has its job
taken over by the other without stalling the other's loop, and when it resumes it stops its old job
and marks nobody offline."""

import os
import signal

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from gpus.models import Node, NodeStatus
from gpus.services import nodes_mark_offline
from scheduling import leases, procs, ticker
from scheduling.models import Attempt, Event, Job
from scheduling.states import Status
from scheduling.transitions import record_creation
from tests.conftest import JOB_PYTHON, job_writable, wait_for
from tests.e2e.chaos import descendant_groups
from tests.factories import make_job
from tests.scheduling.helpers import running_attempt

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    # SQLite serves one machine: a process frozen inside a write holds the one write lock, so every
    # process waits on it whatever gpuq does. Several machines mean PostgreSQL (CI runs both databases).
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="several machines: PostgreSQL",
    ),
]

# Grace longer than the node timeout: a loop that waited out a grace inline would go silent long
# enough to be marked offline.
TIMING = {"GPUQ_KILL_GRACE_SECONDS": 4, "GPUQ_NODE_TIMEOUT_SECONDS": 3}
TAKE_OVER = leases.Margins(0.3, 3, 4, 1.5).reap_after  # lease 3 s (tests/e2e/conftest.py) + 4 + 1.5

# Attempt 1 works until stopped; later attempts finish at once. Each records its start and end.
JOB = (
    "import os, signal, sys, time; f = open(sys.argv[1], 'a', buffering=1); a = os.environ['GPUQ_ATTEMPT']; "
    "f.write(f'start {a}\\n'); signal.signal(signal.SIGTERM, lambda *_: sys.exit(143)); "
    "import atexit; atexit.register(lambda: f.write(f'end {a}\\n')); "
    "time.sleep(600 if a == '1' else 0)"
)


def offline_events(name: str, after: int) -> list[Event]:
    return [
        e
        for e in Event.objects.filter(kind=Event.Kind.NODE, id__gt=after)
        if e.data.get("name") == name and e.data.get("status") == NodeStatus.OFFLINE
    ]


def test_a_frozen_node_is_taken_over_without_stalling_the_other_and_resumes_harmlessly(
    root, start_node, tmp_path
):
    marks = job_writable(tmp_path / "out") / "marks"
    first = start_node(
        "first", gpus="1x24GB", data_dir=tmp_path / "first", GPUQ_BOOT_ID_OVERRIDE="boot-first", **TIMING
    )
    job = make_job(root, argv=[JOB_PYTHON, "-c", JOB, str(marks)], max_attempts=3)
    record_creation(job)
    attempt = wait_for(lambda: running_attempt(job.pk), timeout=30, message="the job to run on first")
    assert (attempt.node.name, attempt.boot_id) == ("first", "boot-first")
    second = start_node(
        "second", gpus="1x24GB", data_dir=tmp_path / "second", GPUQ_BOOT_ID_OVERRIDE="boot-second", **TIMING
    )
    wait_for(lambda: Node.objects.get(name="second").status == NodeStatus.ONLINE, message="second online")

    # Both live: second's loop reaps every period, yet leaves first's heartbeating job alone (it does
    # not judge a process recorded under another boot id, and first's heartbeats are fresh).
    beats = Node.objects.get(name="second").heartbeat_at
    wait_for(
        lambda: (Node.objects.get(name="second").heartbeat_at - beats).total_seconds() > TAKE_OVER + 1,
        timeout=60,
        message="second's loop to run for longer than a take-over time",
    )
    assert list(Attempt.objects.filter(job=job).values_list("number", "ended_at")) == [(1, None)]

    mark = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    frozen = descendant_groups(first.pid) | {first.pid}
    for pgid in frozen:  # the node, its cluster, its executor and its job, all at once
        procs.signal_group(pgid, signal.SIGSTOP)
    try:

        def moved_on():
            nodes_mark_offline()  # what any node's loop does: second must never look silent
            return Job.objects.get(pk=job.pk).status == Status.COMPLETED

        wait_for(moved_on, timeout=90, message="the job to be taken over and completed on second")
        assert offline_events("second", mark) == []
    finally:
        for pgid in frozen:
            procs.signal_group(pgid, signal.SIGCONT)

    # Resumed: first's executor finds its lease gone and stops the old process; first's loop comes back
    # online and marks no healthy node offline.
    wait_for(lambda: not procs.group_alive(attempt.pid), timeout=30, message="the old process to stop")
    resumed = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    wait_for(
        lambda: Node.objects.get(name="first").status == NodeStatus.ONLINE, timeout=30, message="first back"
    )
    beats = Node.objects.get(name="first").heartbeat_at
    wait_for(
        lambda: (Node.objects.get(name="first").heartbeat_at - beats).total_seconds() > 2,
        timeout=30,
        message="first's loop to run again",
    )
    assert offline_events("second", resumed) == []
    rows = [
        (a.number, a.node.name, a.outcome) for a in Attempt.objects.filter(job=job).select_related("node")
    ]
    assert rows == [(1, "first", Status.PENDING), (2, "second", Status.COMPLETED)]
    assert "executor lost" in Attempt.objects.get(job=job, number=1).reason
    assert Job.objects.get(pk=job.pk).status == Status.COMPLETED
    assert second.poll() is None and first.poll() is None
    assert os.path.exists(marks)


def test_a_node_loop_never_waits_behind_another_nodes_tick(root, start_node):
    start_node("solo", **TIMING)
    wait_for(lambda: Node.objects.filter(name="solo", status=NodeStatus.ONLINE).exists(), message="online")
    db = connection.settings_dict
    holder = psycopg.connect(
        dbname=db["NAME"],
        user=db["USER"],
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        autocommit=True,
    )
    mark = Event.objects.order_by("-id").values_list("id", flat=True).first() or 0
    try:
        # A tick that never ends (a node frozen in the middle of one) holds the ticker's lock.
        holder.execute("SELECT pg_advisory_lock(%s)", [ticker._ADVISORY_LOCK_KEY])
        beats = Node.objects.get(name="solo").heartbeat_at

        def heartbeating():
            nodes_mark_offline()
            return (Node.objects.get(name="solo").heartbeat_at - beats).total_seconds() > 2 * TIMING[
                "GPUQ_NODE_TIMEOUT_SECONDS"
            ]

        wait_for(heartbeating, timeout=60, message="the node to keep heartbeating")
    finally:
        holder.close()
    assert offline_events("solo", mark) == []
