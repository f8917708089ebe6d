"""`gpuq_web --workers 2`: two real Daphne processes on one port (SO_REUSEPORT) under one supervisor, each
relaying every event from the database to its websocket clients; a worker that dies is replaced, and
stopping the supervisor stops them all. On PostgreSQL a web process serves its requests from a pool of
a bounded number of connections."""

import json
import os
import signal
import subprocess
import sys
import threading

import httpx
import pytest
from django.conf import settings
from django.contrib.auth.models import Permission
from websockets.sync.client import connect

from accounts.models import ApiToken
from tests.conftest import child_env, wait_for
from tests.e2e.conftest import alive, free_port, login, postgresql_only, proc_stat, stop, wait_serving

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def listening_workers(parent: int, port: int) -> set[int]:
    """The children of `parent` that hold a listening socket on `port` (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in open(table).read().splitlines()[1:]:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # 0A: LISTEN
                inodes.add(fields[9])
    found = set()
    for entry in filter(str.isdigit, os.listdir("/proc")):
        if (proc_stat(entry) or [None, None])[1] != str(parent):
            continue
        try:
            links = {os.readlink(f"/proc/{entry}/fd/{fd}") for fd in os.listdir(f"/proc/{entry}/fd")}
        except OSError:
            continue
        if any(f"socket:[{inode}]" in links for inode in inodes):
            found.add(int(entry))
    return found


def test_two_workers_serve_one_port_relay_every_event_and_stop_together(tmp_path, alice, node):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    token = {"Authorization": f"Token {ApiToken.issue(user=alice)[1]}"}
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", str(port)],
        env=child_env(GPUQ_DATA_DIR=tmp_path, GPUQ_LOG_LEVEL="WARNING", GPUQ_WEB_WORKERS="2"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_serving(base, timeout=60)
        workers = wait_for(
            lambda: len(w := listening_workers(server.pid, port)) == 2 and w, 60, message="two workers"
        )
        session = login(base, "alice", "pw-alice")
        cookie = "; ".join(f"{k}={v}" for k, v in session.cookies.items())
        with connect(
            f"ws://127.0.0.1:{port}/ws/events", additional_headers={"Cookie": cookie, "Origin": base}
        ) as socket:
            assert json.loads(socket.recv(timeout=30))["kind"] == "hello"
            # Each submission on a new connection: the kernel spreads them over both workers, and the
            # client's relay, in whichever worker it reached, gets every one from the database.
            made = []
            for _ in range(6):
                with httpx.Client(base_url=base, headers=token, timeout=30) as http:
                    response = http.post("/api/v1/jobs", json={"argv": ["true"]})
                assert response.status_code == 201, response.text[:300]
                made.append(response.json()["id"])
            seen = []
            while len(seen) < len(made):
                event = json.loads(socket.recv(timeout=30))
                if event["kind"] == "job" and event["data"]["from"] == "":  # a submission's
                    seen.append(event["data"]["id"])
            assert seen == made
        # A worker that dies is replaced; the port keeps being served.
        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_for(
            lambda: len(w := listening_workers(server.pid, port)) == 2 and victim not in w,
            60,
            message="a new worker",
        )
        assert session.get("/api/v1/jobs").status_code == 200
        workers = listening_workers(server.pid, port)
    finally:
        stop(server)
    assert server.returncode == 0
    wait_for(lambda: not any(alive(pid) for pid in workers), 30, message="the workers to stop")


@postgresql_only("the pool is PostgreSQL's")
def test_a_web_process_serves_concurrent_requests_from_a_bounded_pool_of_connections(start_web, alice):
    """Django runs each ASGI request in a thread of its own: without the pool every request opened a
    PostgreSQL connection (eight busy clients went past max_connections)."""
    from django.db import connection

    base = start_web(GPUQ_WEB_DB_POOL_SIZE="3")
    token = {"Authorization": f"Token {ApiToken.issue(user=alice)[1]}"}
    statuses, most = [], [0]

    def web_connections() -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'gpuq-web'"
            )
            return cursor.fetchone()[0]

    def client():
        with httpx.Client(base_url=base, headers=token, timeout=60) as http:
            for _ in range(10):
                statuses.append(http.get("/api/v1/jobs").status_code)

    threads = [threading.Thread(target=client) for _ in range(8)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        most[0] = max(most[0], web_connections())
        threads[0].join(timeout=0.05)
    for thread in threads:
        thread.join()
    assert statuses == [200] * 80
    assert 1 <= max(most[0], web_connections()) <= 3
