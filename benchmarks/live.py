"""Delay from a job transition to its event arriving at a connected websocket client.

Starts a real `gpuq_web` (Daphne) on a fresh SQLite database in a temporary folder (or on the
PostgreSQL database given with --database-url, which it migrates and fills: give it an empty one), logs in,
connects to /ws/events, then makes transitions in this process (so each event crosses processes, as a
node's would) and times each one from its commit to its arrival. Baseline, in the same run: a client that
polls the job's API every 2 s, as the reference UIs do. With --rollbacks, a transaction that wrote an
event and rolled back comes before every transition (a hole in the ids that readers must not wait on).

    .venv/bin/python benchmarks/live.py [--events 200] [--baseline-events 10] [--rollbacks]
                                        [--database-url URL]
"""

import argparse
import json
import os
import statistics
import threading
import time
from pathlib import Path

from _common import (  # benchmarks/ is on sys.path when run as a script
    logged_in,
    percentile,
    setup_django,
    start_web,
)

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--baseline-events", type=int, default=10)
    parser.add_argument("--rollbacks", action="store_true")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    setup_django("gpuq-live-", args.database_url)
    import httpx
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from websockets.sync.client import connect

    from scheduling.events import emit_node
    from scheduling.models import Job
    from scheduling.states import Status
    from scheduling.transitions import transition

    call_command("migrate", verbosity=0)
    name = f"live-{os.getpid()}"
    user = get_user_model().objects.create_superuser(name, password="live-bench-only", email="")
    port = 8800 + os.getpid() % 1000
    server, base = start_web(port)
    try:
        web = logged_in(base, name, "live-bench-only")
        cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
        job = Job.objects.create(owner=user, argv=["true"], status=Status.PENDING)

        def committed_at(reason: str) -> float:
            """Move the job (pending <-> paused); the moment that committed (its first on-commit callback)."""
            stamp = []
            with transaction.atomic():
                transaction.on_commit(lambda: stamp.append(time.perf_counter()))
                transition(
                    job, Status.PAUSED if job.status == Status.PENDING else Status.PENDING, reason=reason
                )
            return stamp[0]

        delays = []
        with connect(
            f"ws://127.0.0.1:{port}/ws/events", additional_headers={"Cookie": cookie, "Origin": base}
        ) as socket:
            assert json.loads(socket.recv(timeout=10))["kind"] == "hello"
            arrived: dict[str, float] = {}  # reason -> when the client got it, stamped by a reader thread
            got = threading.Condition()

            def reader():
                for text in socket:
                    event, at = json.loads(text), time.perf_counter()
                    if event.get("kind") == "job":
                        with got:
                            arrived[event["data"]["reason"]] = at
                            got.notify_all()

            threading.Thread(target=reader, daemon=True).start()
            for i in range(args.events):
                if args.rollbacks:
                    with transaction.atomic():
                        emit_node("rolled back")
                        transaction.set_rollback(True)
                reason = f"bench {i}"
                committed = committed_at(reason)
                with got:
                    if not got.wait_for(lambda reason=reason: reason in arrived, timeout=10):
                        raise SystemExit(f"event {i} never arrived")
                delays.append((arrived[reason] - committed) * 1000)
                time.sleep(0.01)

        # Baseline: a client polling the job's API every 2 s on its own schedule; the changes land at
        # random points of its period.
        import random

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
            committed = committed_at(f"poll {i}")
            while f"poll {i}" not in seen:
                time.sleep(0.01)
            baseline.append((seen[f"poll {i}"] - committed) * 1000)
        stop.set()
    finally:
        server.terminate()
        server.wait(timeout=10)

    holes = ", each after a rolled-back event" if args.rollbacks else ""
    print(f"live events ({connection.vendor}): transition commit → websocket client{holes}, n={len(delays)}")
    print(
        f"  p50 {statistics.median(delays):.1f} ms, p95 {percentile(delays, 95):.1f} ms, "
        f"max {max(delays):.1f} ms"
    )
    print(f"baseline: polling the API every 2 s, n={len(baseline)}")
    print(f"  p50 {statistics.median(baseline):.1f} ms, p95 {percentile(baseline, 95):.1f} ms")
    print(f"ratio (baseline p50 / live p50): {statistics.median(baseline) / statistics.median(delays):.1f}×")


if __name__ == "__main__":
    main()
