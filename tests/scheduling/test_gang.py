"""Gang jobs through the API and the executor: one job, one process per node, started and ended as one.
The executors of both parts run in this process (threads), with real child processes."""

import threading

import pytest
from django.db import connection
from django.test import Client

from gpus.inventory import parse_declared
from gpus.models import Allocation
from gpus.services import node_register
from scheduling import gang, procs, retention, ticker
from scheduling.models import AttemptPart, Job
from scheduling.states import Status
from tests.conftest import api_for, wait_for
from tests.factories import make_job
from tests.scheduling.helpers import PY


def tick():
    """A tick as the ticker runs it, under its lock: in the transactional tests the submit's own ask
    wakes this process's ticker thread, and a bare tick beside it would dispatch the job twice."""
    return ticker.run(force=True, wait=True)


# Each part prints its rendezvous variables; rank 1 connects to rank 0 at MASTER_ADDR:MASTER_PORT and
# they swap ranks over the socket, as torch.distributed's store would.
RANKS = (
    PY,
    "-c",
    """
import os, socket, time
rank, world = int(os.environ["NODE_RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
print("rank", rank, "of", world, "nnodes", os.environ["NNODES"], "cuda", os.environ["CUDA_VISIBLE_DEVICES"], flush=True)
if rank == 0:
    server = socket.create_server(("", port))
    server.settimeout(120)
    peer, _ = server.accept()
    peer.sendall(b"0")
    print("rank 0 heard from rank", peer.recv(8).decode(), flush=True)
else:
    deadline = time.monotonic() + 120
    while True:
        try:
            peer = socket.create_connection((addr, port), timeout=5)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    peer.sendall(str(rank).encode())
    print("rank", rank, "heard from rank", peer.recv(8).decode(), flush=True)
""",
)


@pytest.fixture
def two_nodes(db, settings):
    settings.GPUQ_NODE_ADDRESS = "127.0.0.1"
    for name in ("a", "b"):
        node_register(
            name=name,
            backend="declared",
            gpus=parse_declared("2x24GB", node_name=name),
            labels={},
            boot_id="",
        )


def submit(user, **body):
    return api_for(user).post("/api/v1/jobs", {"argv": ["true"], **body}, format="json")


# --- the API --------------------------------------------------------------------------------------


def test_a_job_may_ask_for_more_gpus_than_one_node_has_as_nodes_times_gpus_per_node(root, two_nodes):
    response = submit(root, nodes=2, gpus_per_node=2)
    assert response.status_code == 201, response.json()
    assert (response.json()["nodes"], response.json()["gpu_count"]) == (2, 4)
    job = Job.objects.get(pk=response.json()["id"])
    assert (job.nodes, job.gpu_count, job.gpus_per_node) == (2, 4, 2)


def test_gpu_count_is_spread_over_the_nodes_when_it_divides(root, two_nodes):
    response = submit(root, nodes=2, gpu_count=2)
    assert response.status_code == 201, response.json()
    assert Job.objects.get(pk=response.json()["id"]).gpus_per_node == 1


# 400: what the schema rules out; 422: a job no node could run, or fields that disagree in a way the
# schema cannot state (queueproject.refusals).
@pytest.mark.parametrize(
    "body, status, field",
    [
        ({"gpu_count": 4}, 422, "gpu_count"),  # more than one node has, and no nodes given: as before
        ({"nodes": 3, "gpus_per_node": 1}, 422, "nodes"),  # only two nodes
        ({"nodes": 2, "gpus_per_node": 3}, 422, "gpus_per_node"),  # no node has three
        ({"nodes": 2, "gpu_count": 3}, 422, "gpu_count"),  # not a multiple
        ({"nodes": 2, "gpus_per_node": 2, "gpu_count": 2}, 422, "gpu_count"),  # disagree
        ({"nodes": 0}, 400, "nodes"),
        ({"nodes": "two"}, 400, "nodes"),
        ({"nodes": 2, "device_ids": [0]}, 422, "device_ids"),
    ],
)
def test_a_gang_that_could_never_run_or_contradicts_itself_is_refused_naming_the_field(
    root, two_nodes, body, status, field
):
    response = submit(root, **body)
    assert response.status_code == status, response.json()
    assert field in response.json(), response.json()


def test_the_tick_dispatches_every_part_of_a_gang_under_one_attempt(root, two_nodes):
    job_id = submit(root, nodes=2, gpus_per_node=2).json()["id"]
    tick()
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.DISPATCHED
    (attempt,) = job.attempts.all()
    parts = [(p.rank, p.node.name, p.gpu_indices) for p in attempt.parts.select_related("node")]
    assert parts == [(0, "a", [0, 1]), (1, "b", [0, 1])]
    held = sorted(Allocation.objects.active().values_list("gpu__node__name", "gpu__index"))
    assert held == [("a", 0), ("a", 1), ("b", 0), ("b", 1)]
    detail = api_for(root).get(f"/api/v1/jobs/{job_id}").json()
    assert [p["rank"] for p in detail["attempts"][0]["parts"]] == [0, 1]


# --- the executor ---------------------------------------------------------------------------------


def run_parts(job: Job) -> list[str]:
    """Run the executor of every part at once, as each node's django-q2 worker would; their results."""
    results = ["?"] * job.nodes

    def part(rank):
        try:
            results[rank] = gang.run_part(job.pk, job.lease_token, rank)
        finally:
            connection.close()

    threads = [threading.Thread(target=part, args=(rank,), daemon=True) for rank in range(job.nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@pytest.mark.django_db(transaction=True)
def test_each_part_gets_its_rank_and_gpus_and_the_ranks_meet_at_the_master(root, two_nodes):
    job_id = submit(root, argv=list(RANKS), nodes=2, gpus_per_node=1).json()["id"]
    tick()
    job = Job.objects.get(pk=job_id)
    assert sorted(run_parts(job)) == ["completed", "part ended"]  # the last part records the job
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.attempt == 1
    (attempt,) = job.attempts.all()
    assert attempt.outcome == Status.COMPLETED
    parts = list(attempt.parts.order_by("rank"))
    assert [p.outcome for p in parts] == [Status.COMPLETED, Status.COMPLETED]
    rank0 = open(job.log_path).read()
    assert "rank 0 of 2 nnodes 2 cuda 0" in rank0 and "rank 0 heard from rank 1" in rank0
    assert (
        "rank 1 of 2 nnodes 2 cuda 0" in parts[1].log_tail and "rank 1 heard from rank 0" in parts[1].log_tail
    )
    assert parts[0].port and parts[0].address == "127.0.0.1"
    assert not Allocation.objects.active().exists()
    # The job page shows the gang and each part, with the log of rank 1 (which ships no log of its own).
    page = Client()
    page.force_login(root)
    html = page.get(f"/jobs/{job_id}/").content.decode()
    assert "a gang job, 1 on each of 2 nodes" in html
    assert "rank 0" in html and "rank 1" in html and "rank 1 heard from rank 0" in html


@pytest.mark.django_db(transaction=True)
def test_a_failing_part_stops_the_others_and_the_job_fails_as_one(root, two_nodes):
    code = "import os, sys, time\nif os.environ['NODE_RANK'] == '1': sys.exit(3)\ntime.sleep(600)"
    job_id = submit(root, argv=[PY, "-c", code], nodes=2, gpus_per_node=1, max_attempts=1).json()["id"]
    tick()
    run_parts(Job.objects.get(pk=job_id))
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.FAILED
    assert job.error.startswith("rank 1 on b: exit code 3"), job.error
    (attempt,) = job.attempts.all()
    parts = {p.rank: p for p in attempt.parts.all()}
    assert parts[1].exit_code == 3
    assert parts[0].reason.startswith("stopped with its gang: rank 1 on b ended")
    assert [(t.from_status, t.to_status) for t in job.transitions.order_by("id")][-1] == ("running", "failed")
    assert not AttemptPart.objects.filter(ended_at__isnull=True).exists()
    assert not Allocation.objects.active().exists()


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_running_gang_stops_every_part_and_cancels_the_job_once(root, two_nodes):
    code = "import time\nprint('up', flush=True)\ntime.sleep(600)"
    job_id = submit(root, argv=[PY, "-c", code], nodes=2, gpus_per_node=1).json()["id"]
    tick()
    job = Job.objects.get(pk=job_id)
    parts = threading.Thread(target=run_parts, args=(job,), daemon=True)
    parts.start()
    both = AttemptPart.objects.filter(attempt__job_id=job_id, pid__isnull=False)
    wait_for(lambda: both.count() == 2, timeout=60, message="both parts to run")
    pids = list(both.values_list("pid", flat=True))
    # Rank 1 ships no log: the end of its file is on its part while it runs.
    rank1 = AttemptPart.objects.filter(attempt__job_id=job_id, rank=1)
    wait_for(lambda: "up" in rank1.get().log_tail, timeout=30, message="rank 1's output on its part")
    assert api_for(root).post(f"/api/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    parts.join(timeout=60)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    (attempt,) = job.attempts.all()
    assert [p.outcome for p in attempt.parts.order_by("rank")] == [Status.CANCELLED, Status.CANCELLED]
    assert [(t.from_status, t.to_status) for t in job.transitions.order_by("id")][-1] == (
        "running",
        "cancelled",
    )
    assert not any(procs.group_alive(pid) for pid in pids)
    assert not Allocation.objects.active().exists()


def test_the_log_of_a_gang_part_goes_with_its_job_on_the_parts_node(root, settings):
    gone = make_job(root)
    make_job(root)  # a newer job: only ids below the highest are judged
    settings.GPUQ_LOG_DIR.mkdir(parents=True, exist_ok=True)
    rank_log = settings.GPUQ_LOG_DIR / f"job-{gone.pk}.rank1.log"
    rank_log.write_text("rank 1 output\n")
    Job.objects.filter(pk=gone.pk).delete()  # removed by a cleanup on the node of rank 0
    assert retention.orphan_files_sweep() == 1
    assert not rank_log.exists()
