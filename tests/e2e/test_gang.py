"""A gang job on two real node processes (one database, as two GPU machines): each node runs one part,
the ranks meet at MASTER_ADDR:MASTER_PORT, and when one node is killed the job stops as one job."""

import os
import signal

import pytest

from gpus.models import Allocation
from scheduling import procs
from scheduling.models import AttemptPart, Job
from scheduling.states import Status
from tests.conftest import JOB_PYTHON, api_for, wait_for
from tests.e2e.conftest import children_groups
from tests.scheduling.test_gang import RANKS

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_a_gang_job_runs_one_part_per_node_and_a_lost_node_stops_it_as_one_job(root, start_node, tmp_path):
    timing = {"GPUQ_NODE_TIMEOUT_SECONDS": 3, "GPUQ_NODE_ADDRESS": "127.0.0.1"}
    nodes = {name: start_node(name, gpus="1x24GB", data_dir=tmp_path / name, **timing) for name in ("a", "b")}
    client = api_for(root)

    # 1. The ranks find each other and the job completes once, with one attempt of two parts.
    body = {"argv": list(RANKS), "nodes": 2, "gpus_per_node": 1}
    job_id = client.post("/api/v1/jobs", body, format="json").json()["id"]
    wait_for(
        lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED, timeout=60, message="the gang job"
    )
    job = Job.objects.get(pk=job_id)
    (attempt,) = job.attempts.all()
    parts = list(attempt.parts.select_related("node").order_by("rank"))
    assert {p.node.name for p in parts} == {"a", "b"}
    rank0 = client.get(f"/api/v1/jobs/{job_id}/log").json()["lines"]
    assert "rank 0 of 2 nnodes 2 cuda 0" in rank0 and "rank 0 heard from rank 1" in rank0
    assert "rank 1 heard from rank 0" in parts[1].log_tail

    # 2. A long gang job; the node of rank 0 (the master) is killed: rank 1 stops, the job is requeued.
    code = "import os, time; print('rank', os.environ['NODE_RANK'], flush=True); time.sleep(600)"
    body = {"argv": [JOB_PYTHON, "-c", code], "nodes": 2, "gpus_per_node": 1, "max_attempts": 3}
    job_id = client.post("/api/v1/jobs", body, format="json").json()["id"]

    def both_running():
        found = AttemptPart.objects.filter(attempt__job_id=job_id, pid__isnull=False, ended_at__isnull=True)
        return list(found.select_related("node").order_by("rank")) if found.count() == 2 else None

    running = wait_for(both_running, timeout=60, message="both parts to run")
    lost, survivor = running
    for pgid in children_groups(nodes[lost.node.name].pid):  # the node process and its cluster, at once
        procs.signal_group(pgid, signal.SIGKILL)
    nodes[lost.node.name].wait()
    wait_for(lambda: Job.objects.get(pk=job_id).attempt == 2, timeout=60, message="the job to be requeued")
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.PENDING  # one node is left: it waits for two
    (first,) = job.attempts.all()
    assert first.outcome == Status.PENDING and f"node {lost.node.name} lost" in first.reason, first.reason
    ended = {p.rank: p for p in first.parts.all()}
    assert ended[survivor.rank].reason.startswith(f"stopped with its gang: rank {lost.rank} on ")
    assert ended[lost.rank].reason == f"node {lost.node.name} lost: part {lost.rank} went silent"
    for part in running:  # neither process is left, on the lost node or the survivor
        assert not os.path.exists(f"/proc/{part.pid}") or not procs.is_same_process(
            part.pid, part.pid_start_time, part.boot_id
        )
    assert [(t.from_status, t.to_status) for t in job.transitions.order_by("id")][-1] == (
        "running",
        "pending",
    )
    assert not Allocation.objects.active().exists()
