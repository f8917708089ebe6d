"""The README's run command: `gpuq_serve` serves pages, API and static files, runs jobs, and Ctrl-C stops
the web server, the node, its cluster and its running job, leaving the job requeued."""

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest
from django.conf import settings

from scheduling import procs
from tests.conftest import wait_for
from tests.e2e.conftest import free_port

pytestmark = pytest.mark.processes


def descendants(pid: int) -> set[int]:
    found, frontier = set(), {pid}
    while frontier:
        children = set()
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                ppid = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1]
            except (OSError, IndexError):
                continue
            if int(ppid) in frontier:
                children.add(int(entry))
        found |= children
        frontier = children
    return found


def alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def test_serve_runs_jobs_and_ctrl_c_stops_everything(tmp_path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "Q_CLUSTER_NAME")}
    env.update(
        GPUQ_DATA_DIR=str(tmp_path),
        GPUQ_INVENTORY="declared",
        GPUQ_NODE_NAME="serve-test",
        GPUQ_KILL_GRACE_SECONDS="1",
        GPUQ_TICK_SECONDS="1",
    )
    serve = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        banner = "".join(serve.stdout.readline() for _ in range(3))
        match = re.search(r"log in as admin / (\S+)\n.*API token: (\S+)", banner, re.S)
        assert match, banner
        password, token = match.groups()
        base = f"http://127.0.0.1:{port}"
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=5)

        def up():
            try:
                return httpx.get(f"{base}/accounts/login/", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(up, timeout=20, message="the web server")
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
