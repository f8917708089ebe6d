"""Fixtures for tests with real gpuq processes."""

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.conftest import child_env, wait_for


def on_postgresql() -> bool:
    return settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def postgresql_only(reason: str):
    """Mark tests that need PostgreSQL (several machines, database faults); CI runs both databases."""
    return pytest.mark.skipif(not on_postgresql(), reason=reason)


@pytest.fixture
def start_node(tmp_path):
    """Start `manage.py gpuq_node` against the test database; stop it (and its cluster) afterwards.
    Each node gets its own data folder (as on its own machine) unless `data_dir` is given."""
    started = []

    def start(name="e2e", gpus="2x24GB", labels="", data_dir=None, **env):
        env = child_env(
            **{
                "GPUQ_NODE_NAME": name,
                "GPUQ_DECLARED_GPUS": gpus,
                "GPUQ_INVENTORY": "declared",
                "GPUQ_DATA_DIR": data_dir or tmp_path,
                "GPUQ_TICK_SECONDS": 0.5,
                "GPUQ_HEARTBEAT_SECONDS": 0.3,
                "GPUQ_LEASE_SECONDS": 3,
                "GPUQ_KILL_GRACE_SECONDS": 2,
                "GPUQ_LEASE_MARGIN_SECONDS": 1.5,
                "GPUQ_Q_POLL_SECONDS": 0.05,
                **env,
            }
        )
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_node"]
        node = spawn(argv + (["--labels", labels] if labels else []), env, tmp_path / f"node-{name}.out")
        started.append(node)
        banner = output_lines(node, 1)[0]
        assert banner.startswith(f"node {name}: ") and "from declared" in banner, banner
        return node

    yield start
    stop_all(started)


def spawn(argv: list[str], env: dict, output: Path) -> subprocess.Popen:
    """Start a process in a session of its own, its output (stdout and stderr) going to the file `output`.
    A file, not a pipe: nobody reads a pipe after the banner, and a server whose log outgrew the pipe's
    64 KiB blocked on its next write, holding the logging lock, and stopped answering (the browser tests'
    shared server did, under the whole suite's load, when it logged more)."""
    with open(output, "ab") as out:
        process = subprocess.Popen(
            argv, env=env, start_new_session=True, stdout=out, stderr=subprocess.STDOUT
        )
    process.output = Path(output)
    return process


def output_lines(process: subprocess.Popen, count: int, timeout: float = 180) -> list[str]:
    """The first `count` whole lines that `process` (from `spawn`) wrote; waits for them, and fails with
    what it wrote if it exits first."""

    def lines():
        written = process.output.read_text(errors="replace")
        whole = written.splitlines(keepends=True)[: written.count("\n")]
        if len(whole) >= count:
            return whole[:count]
        assert process.poll() is None, f"exited ({process.returncode}) after writing:\n{written}"

    return wait_for(lines, timeout, interval=0.05, message=f"{count} lines from {process.args}")


def proc_stat(pid) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name: state, parent pid, process group, …"""
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def alive(pid: int) -> bool:
    fields = proc_stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def descendants(pid: int) -> set[int]:
    """Every process below `pid` (found before it is reaped)."""
    parents: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        if fields := proc_stat(entry):
            parents.setdefault(int(fields[1]), []).append(int(entry))
    found, frontier = set(), [pid]
    while frontier:
        for child in parents.get(frontier.pop(), []):
            found.add(child)
            frontier.append(child)
    return found


def children_groups(pid: int) -> set[int]:
    """The process groups of `pid` and of its direct children: a node process and its executor cluster,
    not the jobs (they run in sessions of their own, one level further down)."""
    groups = {pid}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        fields = proc_stat(entry)
        if fields and (fields[1] == str(pid) or fields[2] == str(pid)):
            groups.add(int(fields[2]))
    return groups


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def start_web(tmp_path):
    """Start a real `gpuq_web` (Daphne) process on the test database, with extra environment variables;
    returns its base URL. Stopped after the test."""
    started = []

    def start(**env) -> str:
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", str(port)],
            env=child_env(**{"GPUQ_DATA_DIR": tmp_path, "GPUQ_LOG_LEVEL": "WARNING", **env}),
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        started.append(server)
        base = f"http://127.0.0.1:{port}"
        wait_serving(base)
        return base

    yield start
    stop_all(started)


@pytest.fixture
def web(start_web):
    """A real `gpuq_web` (Daphne) process on the test database; yields its base URL."""
    return start_web()


def login(base: str, username: str, password: str) -> httpx.Client:
    """A browser-like client logged in through the login page (session and CSRF cookies)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import PBKDF2PasswordHasher

    # The tests' fast hasher is not one the server knows: store the password in one it does (few rounds).
    hashed = PBKDF2PasswordHasher().encode(password, "gpuq-test-salt", iterations=1000)
    get_user_model().objects.filter(username=username).update(password=hashed)
    client = httpx.Client(base_url=base, timeout=10, follow_redirects=True)
    client.get("/accounts/login/")
    response = client.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": client.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    assert "sessionid" in client.cookies, response.text[:500]
    return client


def stop(process: subprocess.Popen, sig=signal.SIGTERM, timeout: float = 15) -> None:
    """Stop a process started in its own session (and its group), by force if it does not stop."""
    stop_all([process], sig, timeout)


def stop_all(processes: list[subprocess.Popen], sig=signal.SIGTERM, timeout: float = 15) -> None:
    """Stop processes started in their own sessions: each gets its signal before any is waited for, so
    their graceful shutdowns overlap instead of adding up; any still there after `timeout` is killed."""
    for process in processes:
        if process.poll() is None:
            os.killpg(process.pid, sig)
    deadline = time.monotonic() + timeout
    for process in processes:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def wait_serving(base: str, timeout: float = 30) -> None:
    def up():
        try:
            return httpx.get(f"{base}/accounts/login/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, timeout=timeout, message=f"{base} to serve")


def start_serve(data_dir, port: int, **env) -> tuple[subprocess.Popen, str, str, str]:
    """`manage.py gpuq_serve` (web server and a node) on its own SQLite database in `data_dir`: returns the
    process, its base URL, the admin's password and an API token, read from its banner."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "Q_CLUSTER_NAME")}
    environment.update(
        GPUQ_DATA_DIR=str(data_dir),
        GPUQ_INVENTORY="declared",
        GPUQ_KILL_GRACE_SECONDS="1",
        GPUQ_TICK_SECONDS="1",
        **{k: str(v) for k, v in env.items()},
    )
    argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_serve", "--port", str(port)]
    data_dir = Path(data_dir)  # gpuq makes it (a test checks how): its output goes beside it
    serve = spawn(argv, environment, data_dir.parent / f"{data_dir.name}-serve.out")
    banner = "".join(output_lines(serve, 3))
    match = re.search(r"log in as admin / (\S+)\n.*API token: (\S+)", banner, re.S)
    assert match, banner
    return serve, f"http://127.0.0.1:{port}", *match.groups()
