"""Delay from a job transition to its event arriving at a connected websocket client.

Starts a real `gpuq_web` (Daphne) on a fresh SQLite database in a temporary folder (or on the
PostgreSQL database given with --database-url, which it migrates and fills: give it an empty one), logs in,
connects to /ws/events, then makes transitions in this process (so each event crosses processes, as a
node's would) and times each one from its commit to its arrival. Baseline, in the same run: a client that
polls the job's API every 2 s, as the reference UIs do.

    .venv/bin/python benchmarks/live.py [--events 200] [--baseline-events 10] [--database-url URL]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import percentile, setup_django  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--baseline-events", type=int, default=10)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    setup_django("gpuq-live-", args.database_url)
    import httpx
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from websockets.sync.client import connect

    from scheduling.models import Job
    from scheduling.states import Status
    from scheduling.transitions import transition

    call_command("migrate", verbosity=0)
    name = f"live-{os.getpid()}"
    user = get_user_model().objects.create_superuser(name, password="live-bench-only", email="")
    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}  # one key for every process of this gpuq
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    port = 8800 + os.getpid() % 1000
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "gpuq_web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(f"{base}/accounts/login/", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        web = httpx.Client(base_url=base, timeout=10, follow_redirects=True)
        web.get("/accounts/login/")
        web.post(
            "/accounts/login/",
            data={
                "username": name,
                "password": "live-bench-only",
                "csrfmiddlewaretoken": web.cookies["csrftoken"],
            },
            headers={"Referer": f"{base}/accounts/login/"},
        )
        cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
        job = Job.objects.create(owner=user, argv=["true"], status=Status.PENDING)

        delays = []
        with connect(
            f"ws://127.0.0.1:{port}/ws/events", additional_headers={"Cookie": cookie, "Origin": base}
        ) as socket:
            assert json.loads(socket.recv(timeout=10))["kind"] == "hello"
            for i in range(args.events):
                target = Status.PAUSED if job.status == Status.PENDING else Status.PENDING
                transition(job, target, reason=f"bench {i}")
                committed = time.perf_counter()
                while True:
                    event = json.loads(socket.recv(timeout=10))
                    if event.get("kind") == "job" and event["data"]["reason"] == f"bench {i}":
                        delays.append((time.perf_counter() - committed) * 1000)
                        break
                time.sleep(0.01)

        # Baseline: a client polling the job's API every 2 s on its own schedule; the changes land at
        # random points of its period.
        import random
        import threading

        seen: dict[str, float] = {}
        stop = threading.Event()

        def poller():
            client = httpx.Client(base_url=base, timeout=10, cookies=web.cookies)
            while not stop.is_set():
                reason = client.get(f"/api/v1/jobs/{job.pk}").json()["transitions"][-1]["reason"]
                seen.setdefault(reason, time.perf_counter())
                stop.wait(2.0)

        thread = threading.Thread(target=poller, daemon=True)
        thread.start()
        baseline = []
        rng = random.Random(0)
        for i in range(args.baseline_events):
            time.sleep(rng.uniform(0.5, 2.5))
            target = Status.PAUSED if job.status == Status.PENDING else Status.PENDING
            transition(job, target, reason=f"poll {i}")
            committed = time.perf_counter()
            while f"poll {i}" not in seen:
                time.sleep(0.01)
            baseline.append((seen[f"poll {i}"] - committed) * 1000)
        stop.set()
    finally:
        server.terminate()
        server.wait(timeout=10)

    print(f"live events ({connection.vendor}): transition commit → websocket client, n={len(delays)}")
    print(
        f"  p50 {statistics.median(delays):.1f} ms, p95 {percentile(delays, 95):.1f} ms, "
        f"max {max(delays):.1f} ms"
    )
    print(f"baseline: polling the API every 2 s, n={len(baseline)}")
    print(f"  p50 {statistics.median(baseline):.1f} ms, p95 {percentile(baseline, 95):.1f} ms")
    print(f"ratio (baseline p50 / live p50): {statistics.median(baseline) / statistics.median(delays):.1f}×")


if __name__ == "__main__":
    main()
