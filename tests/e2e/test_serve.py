"""The README's run command: `gpuq_serve` serves pages, API and static files, runs jobs, and Ctrl-C stops
the web server, the node, its cluster and its running job, leaving the job requeued."""

import os
import signal
import time

import httpx
import pytest

from scheduling import procs
from tests.conftest import wait_for
from tests.e2e.conftest import alive, descendants, free_port, start_serve, wait_serving

pytestmark = pytest.mark.processes


def test_serve_runs_jobs_and_ctrl_c_stops_everything(tmp_path):
    serve, base, password, token = start_serve(tmp_path, free_port(), GPUQ_NODE_NAME="serve-test")
    try:
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=5)

        wait_serving(base, timeout=20)
        assert httpx.get(f"{base}/").status_code == 302  # the queue page asks for a login
        assert "table.jobs" in httpx.get(f"{base}/static/gpuq/gpuq.css").text

        job = api.post(
            "/api/v1/jobs", json={"template": "hello-gpu", "params": {"message": "hi there"}}
        ).json()
        wait_for(
            lambda: api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed",
            timeout=20,
            message="the template job to complete",
        )
        assert api.get(f"/api/v1/jobs/{job['id']}/log").json()["lines"][1:3] == ["GPUs: 0", "hi there"]

        long = api.post("/api/v1/jobs", json={"argv": ["sleep", "600"]}).json()
        running = wait_for(
            lambda: (lambda j: j["status"] == "running" and j)(api.get(f"/api/v1/jobs/{long['id']}").json()),
            timeout=20,
            message="the long job to run",
        )
        assert running["gpu_indices"] == [0]
        time.sleep(0.5)
        family = descendants(serve.pid)
        assert len(family) >= 4  # web, node, cluster processes, the job

        stopping = time.monotonic()
        os.killpg(serve.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert serve.wait(timeout=30) == 0
        took = time.monotonic() - stopping
        assert not [pid for pid in family if alive(pid)]
        assert took < 15, f"stopping took {took:.1f} s"
    finally:
        if serve.poll() is None:
            procs.signal_group(serve.pid, signal.SIGKILL)
            serve.wait()

    # The interrupted job is back in the queue as a new attempt, its GPU free, when gpuq starts again.
    import sqlite3

    db = sqlite3.connect(tmp_path / "gpuq.sqlite3")
    status, attempt = db.execute(
        "SELECT status, attempt FROM scheduling_job WHERE id = ?", [long["id"]]
    ).fetchone()
    assert (status, attempt) == ("pending", 2)
    assert db.execute("SELECT count(*) FROM gpus_allocation WHERE released_at IS NULL").fetchone() == (0,)
