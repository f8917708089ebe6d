"""Two node processes on one machine, as two GPU machines sharing one database: jobs go where placement
says (labels, model pattern, memory, target), and when one node is killed its job finishes on the other."""

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from accounts.models import ApiToken
from gpus.models import Allocation, Node, NodeStatus
from scheduling import procs
from scheduling.models import Job
from scheduling.states import Status
from tests.conftest import JOB_PYTHON, api_for, wait_for
from tests.e2e.conftest import children_groups

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

# Prints what proves where it ran: the folder its node gave it, and the GPUs it may use.
WHERE = "import os; print('cwd', os.getcwd()); print('cuda', os.environ['CUDA_VISIBLE_DEVICES'])"


@pytest.fixture
def two_nodes(start_node, tmp_path):
    """`small`: the server's own node, 2 × 24 GB L4 in eu; `big`: a worker, 4 × 80 GB A100 in us."""
    start_node(
        "small",
        gpus="2x24GB:NVIDIA L4",
        labels="zone=eu-west",
        data_dir=tmp_path / "small",
        GPUQ_NODE_LOCAL=1,
    )
    start_node(
        "big",
        gpus="4x80GB:NVIDIA A100-SXM4-80GB",
        labels="zone=us-east,gpu_type=a100",
        data_dir=tmp_path / "big",
    )
    return tmp_path


def test_jobs_run_where_placement_says_with_the_right_gpus(root, two_nodes):
    client = api_for(root)
    asks = [
        ({"node_labels": {"zone": "eu-*"}}, "small", "0"),
        ({"gpu_model": "A100*", "gpu_count": 2}, "big", "0,1"),
        ({"min_gpu_memory_mb": 40000, "gpu_count": 2}, "big", "2,3"),
        ({"target": "local", "device_ids": [1]}, "small", "1"),
    ]
    ids = []
    for ask, _, _ in asks:
        # Each job holds its GPUs a moment, so that the next ones see them busy.
        argv = [JOB_PYTHON, "-c", WHERE + "; import time; time.sleep(1.5)"]
        response = client.post("/api/v1/jobs", {"argv": argv, **ask}, format="json")
        assert response.status_code == 201, response.json()
        ids.append(response.json()["id"])
    wait_for(
        lambda: all(Job.objects.get(pk=i).status == Status.COMPLETED for i in ids),
        timeout=30,
        message="all jobs to complete",
    )
    for job_id, (ask, node, cuda) in zip(ids, asks, strict=True):
        job = Job.objects.select_related("node").get(pk=job_id)
        assert job.node.name == node, ask
        lines = client.get(f"/api/v1/jobs/{job_id}/log").json()["lines"]
        # The job ran in the data folder of the node the database names, with the GPUs it was given.
        assert f"cwd {two_nodes / node / 'jobs' / str(job_id)}" in lines, (ask, lines)
        assert f"cuda {cuda}" in lines, (ask, lines)
        assert ",".join(map(str, job.gpu_indices)) == cuda
    assert not Allocation.objects.active().exists()


def test_a_killed_node_goes_offline_and_its_job_finishes_on_the_other(root, start_node, tmp_path):
    timing = {"GPUQ_NODE_TIMEOUT_SECONDS": 3}
    first = start_node("first", data_dir=tmp_path / "first", **timing)
    client = api_for(root)
    # Attempt 1 runs until killed; attempt 2 (on the other node) finishes at once.
    code = "import os, time; print('attempt', os.environ['GPUQ_ATTEMPT'], os.getcwd()); " + (
        "time.sleep(0 if os.environ['GPUQ_ATTEMPT'] != '1' else 600)"
    )
    job_id = client.post("/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", code]}, format="json").json()["id"]
    job = wait_for(
        lambda: Job.objects.filter(pk=job_id, status=Status.RUNNING, pid__isnull=False).first(),
        timeout=15,
        message="the job to run on the first node",
    )
    assert job.node.name == "first"
    start_node("second", data_dir=tmp_path / "second", **timing)

    killed = time.monotonic()
    for pgid in children_groups(first.pid):  # the node process and its whole cluster, at once
        procs.signal_group(pgid, signal.SIGKILL)
    first.wait()
    wait_for(
        lambda: Node.objects.get(name="first").status == NodeStatus.OFFLINE,
        timeout=30,
        message="the killed node to go offline",
    )
    offline_after = time.monotonic() - killed
    wait_for(lambda: Job.objects.get(pk=job_id).attempt == 2, timeout=30, message="the job to be requeued")
    requeued_after = time.monotonic() - killed
    wait_for(
        lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED,
        timeout=20,
        message="the job to finish on the other node",
    )
    job = Job.objects.select_related("node").get(pk=job_id)
    assert job.node.name == "second" and job.attempt == 2
    assert offline_after < 30 and requeued_after < 30, (offline_after, requeued_after)
    moves = [(t.from_status, t.to_status) for t in job.transitions.order_by("id")]
    assert moves[-4:] == [
        ("running", "pending"),
        ("pending", "dispatched"),
        ("dispatched", "running"),
        ("running", "completed"),
    ]
    log = open(job.log_path).read()
    assert f"attempt 2 {tmp_path / 'second' / 'jobs' / str(job_id)}" in log
    assert not os.path.exists(f"/proc/{job.pid}") if job.pid else True
    assert not Allocation.objects.active().exists()


def test_the_api_reads_and_follows_the_log_of_a_job_on_the_other_node_with_no_shared_folder(
    root, start_node, web, tmp_path
):
    """The job runs on `far`, whose data folder the web process does not share (its own data folder), and
    which is moved away once the job runs, so no process can read the log file at its path: the API still
    returns its tail and follows it by offset while it runs, from what the node shipped."""
    start_node("near", data_dir=tmp_path / "near", labels="zone=near", GPUQ_NODE_LOCAL=1)
    start_node("far", data_dir=tmp_path / "far", labels="zone=far")
    go = tmp_path / "go"
    code = (
        "import os, time\n"
        "for i in range(5): print('tick', i, flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.05)\n"
        "print('after go é→', flush=True)\n"
    )
    _, key = ApiToken.issue(user=root)
    api = httpx.Client(base_url=web, headers={"Authorization": f"Token {key}"}, timeout=30)
    submitted = api.post(
        "/api/v1/jobs", json={"argv": [JOB_PYTHON, "-c", code], "node_labels": {"zone": "far"}}
    )
    assert submitted.status_code == 201, submitted.text
    job_id = submitted.json()["id"]
    job = wait_for(
        lambda: Job.objects.filter(pk=job_id, status=Status.RUNNING, pid__isnull=False).first(),
        timeout=30,
        message="the job to run on the far node",
    )
    assert job.node.name == "far" and job.log_path.startswith(str(tmp_path / "far"))
    os.rename(tmp_path / "far", tmp_path / "far-elsewhere")
    assert not os.path.exists(job.log_path)

    def tail():
        return api.get(f"/api/v1/jobs/{job_id}/log?lines=3").json()["lines"]

    wait_for(
        lambda: tail() == ["tick 2", "tick 3", "tick 4"],
        timeout=30,
        interval=0.2,  # a client's pace, well under the API's rate limit
        message="the tail of the running job",
    )
    follower = {"text": "", "offset": 0, "reads_while_running": 0}

    def follow() -> bool:
        """One read of a follower (log.js does this every second): True once everything is read."""
        body = api.get(f"/api/v1/jobs/{job_id}/log?offset={follower['offset']}").json()
        assert body["offset"] == follower["offset"]
        follower["text"] += body["text"]
        follower["offset"] = body["next_offset"]
        if not body["finished"]:
            follower["reads_while_running"] += 1
            if "tick 4" in follower["text"]:
                go.touch()  # followed while running; now let it finish
        return body["finished"] and body["next_offset"] == body["size"]

    wait_for(follow, timeout=60, interval=0.2, message="the follower to read the whole log")
    text, reads_while_running = follower["text"], follower["reads_while_running"]
    assert reads_while_running >= 1
    moved = Path(job.log_path.replace(str(tmp_path / "far"), str(tmp_path / "far-elsewhere")))
    assert text == moved.read_text()  # each byte once, in order, the whole log
    assert (
        "tick 0\n" in text
        and "after go é→\n" in text
        and text.endswith("=== gpuq: completed (exit code 0) ===\n")
    )
    assert Job.objects.get(pk=job_id).status == Status.COMPLETED
