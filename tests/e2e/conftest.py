"""Fixtures for tests with real gpuq processes."""

import os
import signal
import socket
import subprocess
import sys

import httpx
import pytest
from django.conf import settings

from tests.conftest import child_env, wait_for


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
                "GPUQ_Q_POLL_SECONDS": 0.05,
                **env,
            }
        )
        argv = [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_node"]
        node = subprocess.Popen(
            argv + (["--labels", labels] if labels else []),
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        started.append(node)
        banner = node.stdout.readline()
        assert banner.startswith(f"node {name}: ") and "from declared" in banner, banner
        return node

    yield start
    for node in started:
        if node.poll() is None:
            os.killpg(node.pid, signal.SIGTERM)
            try:
                node.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(node.pid, signal.SIGKILL)
                node.wait()


def children_groups(pid: int) -> set[int]:
    """Process groups of the descendants of `pid` (found before it is reaped)."""
    groups = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[1] is the parent pid, fields[2] the process group.
        if fields[1] == str(pid) or fields[2] == str(pid):
            groups.add(int(fields[2]))
    return groups


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web(tmp_path):
    """A real `gpuq_web` (Daphne) process on the test database; yields its base URL."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", str(port)],
        env=child_env(GPUQ_DATA_DIR=tmp_path, GPUQ_LOG_LEVEL="WARNING"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            return httpx.get(f"{base}/accounts/login/", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_for(up, timeout=30, message="the web server")
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


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
