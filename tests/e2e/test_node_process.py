"""The whole pipeline with real processes: a `gpuq_node` process (with its django-q2 cluster) executes
jobs that this test submits through the API; the node is killed with SIGKILL and restarted."""

import signal

import pytest
from django.utils import timezone

from gpus.models import Allocation
from scheduling import procs
from scheduling.models import Job
from scheduling.states import Status
from tests.conftest import JOB_PYTHON, api_for, job_writable, wait_for
from tests.e2e.conftest import children_groups
from tests.scheduling.helpers import running_attempt

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def statuses(*jobs):
    return [Job.objects.get(pk=j).status for j in jobs]


# A node whose periodic tick is far off: what runs within the tests' deadlines was started by an event
# (the submit, a job's end), not by a later periodic tick. No clock is read.
NO_PERIODIC_TICK = {"GPUQ_TICK_SECONDS": 60, "GPUQ_NODE_TIMEOUT_SECONDS": 600}


def test_a_submitted_job_runs_on_a_gpu_and_completes(root, start_node):
    start_node(**NO_PERIODIC_TICK)  # dispatched by the submit itself
    client = api_for(root)
    code = "import os; print(os.environ['CUDA_VISIBLE_DEVICES'])"
    job_id = client.post("/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", code]}, format="json").json()["id"]
    wait_for(lambda: statuses(job_id) == [Status.COMPLETED], timeout=15, message="the job to complete")
    body = client.get(f"/api/v1/jobs/{job_id}").json()
    assert [(t["from_status"], t["to_status"]) for t in body["transitions"]] == [
        ("", "pending"),
        ("pending", "dispatched"),
        ("dispatched", "running"),
        ("running", "completed"),
    ]
    log = client.get(f"/api/v1/jobs/{job_id}/log").json()["lines"]
    assert str(body["gpu_indices"][0]) in log
    assert not Allocation.objects.active().exists()


def test_two_gpus_three_jobs_the_third_waits_then_starts(root, start_node, tmp_path):
    start_node(**NO_PERIODIC_TICK)  # the third job can start only on the first one's finish event
    client = api_for(root)
    ids = [
        client.post("/api/v1/jobs", {"argv": ["sleep", "2"]}, format="json").json()["id"] for _ in range(3)
    ]
    wait_for(lambda: statuses(*ids)[:2] == [Status.RUNNING] * 2, message="two jobs running")
    queue = client.get("/api/v1/queue").json()
    assert sorted(j["id"] for j in queue["running"]) == ids[:2]  # started at once, in either order
    assert [(j["id"], j["wait_reason"]) for j in queue["pending"]] == [(ids[2], "resources")]
    wait_for(lambda: statuses(ids[2]) == [Status.RUNNING], timeout=30, message="the third job to start")
    wait_for(lambda: statuses(*ids) == [Status.COMPLETED] * 3, timeout=10, message="all to complete")


def test_sigkill_of_the_node_never_leaves_a_job_running_nor_runs_it_twice(root, start_node, tmp_path):
    node = start_node()
    marks = job_writable(tmp_path / "out") / "marks"
    # Each attempt records its start and its end; a second attempt must start after the first ended.
    code = (
        "import os, sys, time; f = open(sys.argv[1], 'a', buffering=1); "
        "f.write(f'start {os.environ[\"GPUQ_ATTEMPT\"]} {time.time()}\\n'); "
        "import atexit, signal; "
        "signal.signal(signal.SIGTERM, lambda *a: sys.exit(143)); "
        "atexit.register(lambda: f.write(f'end {os.environ[\"GPUQ_ATTEMPT\"]} {time.time()}\\n')); "
        "time.sleep(float(sys.argv[2]) if os.environ['GPUQ_ATTEMPT'] != '1' else 600)"
    )
    client = api_for(root)
    job_id = client.post(
        "/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", code, str(marks), "1"]}, format="json"
    ).json()["id"]
    child_pid = wait_for(lambda: running_attempt(job_id), timeout=15, message="the job to run").pid
    wait_for(lambda: marks.exists() and "start 1" in marks.read_text(), message="attempt 1 to begin its work")
    cluster_groups = children_groups(node.pid)
    assert len(cluster_groups) >= 2  # the node's own group and its cluster's
    for pgid in cluster_groups:  # the node process and its whole django-q2 cluster, at once
        procs.signal_group(pgid, signal.SIGKILL)
    node.wait()
    # The job's process dies with its executor (parent-death signal), so nothing runs it now.
    wait_for(lambda: not procs.group_alive(child_pid), timeout=10, message="the orphaned job to stop")
    assert Job.objects.get(pk=job_id).status == Status.RUNNING  # the database has not noticed yet

    start_node()
    wait_for(lambda: statuses(job_id) == [Status.COMPLETED], timeout=20, message="the job to complete")
    job = Job.objects.get(pk=job_id)
    assert job.attempt == 2
    assert [(t.from_status, t.to_status) for t in job.transitions.order_by("id")][-4:] == [
        ("running", "pending"),
        ("pending", "dispatched"),
        ("dispatched", "running"),
        ("running", "completed"),
    ]
    lines = [line.split() for line in marks.read_text().splitlines()]
    events = [(kind, attempt) for kind, attempt, _ in lines]
    assert events == [("start", "1"), ("end", "1"), ("start", "2"), ("end", "2")]
    assert float(lines[1][2]) <= float(lines[2][2])  # attempt 2 started after attempt 1 ended
    assert not Allocation.objects.active().exists()
    assert job.finished_at <= timezone.now()
