"""The queue page at 10,000 waiting jobs while 20 live pages are open and an event comes every second.

Starts a real `gpuq_web` (Daphne) on a fresh database (SQLite in a temporary folder, or the PostgreSQL
database given with --database-url, which it migrates and fills: give it an empty one) with 10,000 waiting
jobs (`benchmarks/pages.py`'s queue: 50 users, a reader with 200 of the jobs). Each "live page" does over
the network what `static/gpuq/live.js` does in a browser: it holds a websocket on /ws/events and, after
each job, queue, node or progress event, fetches the queue page's fragment (one page of rows) 100 ms after
the last event of a burst (live.js's debounce; until this version it fetched at the first event), at most
one fetch at a time, with one more if events came meanwhile. The pages belong to --pages different users
(each sees its own rows and buttons). Once a second a separate process moves a job of another user
(waiting <-> paused), as a node or a user would, so every open page refetches; that process asks for the
tick and its own ticker thread plans the queue, as a node or another web process would. (Until this
version the moves, and so the ticks of 10,000 jobs, ran in this process, whose threads are the pages:
the clients waited for the GIL behind the planner, and the figures blamed the server.)

Measured: the time to load the whole queue page (`GET /`) from one more client, p50 and p95, alone (the
baseline, same run) and with the 20 live pages and the events; and, per live page, the delay from an
event's commit to the end of that page's fetch of the new rows.

    .venv/bin/python benchmarks/live_pages.py [--jobs 10000] [--pages 20] [--seconds 40]
                                              [--workers 1]
                                              [--database-url URL]
"""

import argparse
import json
import multiprocessing
import os
import threading
import time

from _common import logged_in, percentile, setup_django, start_web  # benchmarks/ is on sys.path
from pages import populate

KINDS = {"job", "queue", "node", "progress", "reset"}
DEBOUNCE_SECONDS = 0.1  # static/gpuq/live.js: soon()


def live_page(base: str, cookies: dict, stop: threading.Event, delays: list, committed: dict, lock):
    """One open queue page: follow /ws/events and refetch the fragment after each relevant event."""
    import httpx
    from websockets.sync.client import connect

    web = httpx.Client(base_url=base, cookies=cookies, timeout=60)
    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    with connect(
        f"{base.replace('http', 'ws')}/ws/events", additional_headers={"Cookie": cookie, "Origin": base}
    ) as socket:
        while not stop.is_set():
            try:
                event = json.loads(socket.recv(timeout=1))
            except TimeoutError:
                continue
            if event.get("kind") not in KINDS:
                continue
            seen = [event]
            # live.js fetches 100 ms after the last of a burst of events (its `soon()`), not at the first.
            while True:
                try:
                    e = json.loads(socket.recv(timeout=DEBOUNCE_SECONDS))
                except TimeoutError:
                    break
                if e.get("kind") in KINDS:
                    seen.append(e)
            while True:  # what arrived while this page fetched: one more fetch covers it all
                response = web.get("/?fragment=1")
                assert response.status_code == 200, response.status_code
                done = time.perf_counter()
                with lock:
                    for e in seen:
                        if e.get("job") in committed and e.get("kind") == "job":
                            delays.append(done - committed[e["job"]])
                seen = []
                try:
                    while True:
                        e = json.loads(socket.recv(timeout=0))
                        if e.get("kind") in KINDS:
                            seen.append(e)
                except TimeoutError:
                    pass
                if not seen:
                    break


def move_jobs(ids: list[int], stamps) -> None:
    """The event source (a child process): pause one job a second; each commit's time goes to `stamps`
    (time.perf_counter is the machine's monotonic clock, the same in every process)."""
    from django.db import connections, transaction

    from scheduling.models import Job
    from scheduling.states import Status
    from scheduling.ticker import settle
    from scheduling.transitions import transition

    connections.close_all()  # never the parent's connection
    for job_id in ids:
        stamp = []
        with transaction.atomic():
            transaction.on_commit(lambda s=stamp: s.append(time.perf_counter()))
            transition(Job.objects.get(pk=job_id), Status.PAUSED, reason="benchmark")
        stamps.put((job_id, stamp[0]))
        time.sleep(1)
    settle()  # the last tick asked for ends before this process does
    stamps.put(None)


def reads(base: str, cookies: dict, count: int, every: float) -> list[float]:
    """`count` loads of the whole queue page, one each `every` seconds; the time of each."""
    import httpx

    web = httpx.Client(base_url=base, cookies=cookies, timeout=60)
    times = []
    for _ in range(count):
        started = time.perf_counter()
        response = web.get("/")
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, response.status_code
        time.sleep(max(0.0, every - times[-1]))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--pages", type=int, default=20)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--workers", type=int, default=1, help="gpuq_web processes (GPUQ_WEB_WORKERS)")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    setup_django("gpuq-bench-live-pages-", args.database_url)
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connections

    from scheduling.models import Job
    from scheduling.ticker import run as run_ticker

    User = get_user_model()

    call_command("migrate", verbosity=0)
    reader = populate(args.jobs)
    run_ticker(force=True, wait=True)  # the stored plan the pages show
    movers = list(Job.objects.exclude(owner=reader).order_by("-id")[: args.seconds + 5])
    viewers = [reader, *User.objects.exclude(pk=reader.pk).order_by("id")[: args.pages - 1]]
    port = 18700 + os.getpid() % 100
    server, base = start_web(port, GPUQ_WEB_WORKERS=str(args.workers))
    source = None
    try:
        sessions = [dict(logged_in(base, user.username, "x").cookies.items()) for user in viewers]
        cookies = sessions[0]
        samples = max(10, args.seconds)
        alone = reads(base, cookies, samples, 0.5)

        stop, lock = threading.Event(), threading.Lock()
        delays: list[float] = []
        committed: dict[int, float] = {}
        pages = [
            threading.Thread(
                target=live_page,
                args=(base, sessions[i % len(sessions)], stop, delays, committed, lock),
                daemon=True,
            )
            for i in range(args.pages)
        ]
        for page in pages:
            page.start()
        time.sleep(2)  # every page connected and said hello

        # The event source: its own process (forked before it touches the database), so that its ticks
        # take a core of the machine but not this process's GIL.
        connections.close_all()
        stamps = multiprocessing.get_context("fork").SimpleQueue()
        source = multiprocessing.get_context("fork").Process(
            target=move_jobs, args=([job.pk for job in movers[: args.seconds]], stamps), daemon=True
        )
        source.start()

        def collect():
            while (item := stamps.get()) is not None:
                with lock:
                    committed[item[0]] = item[1]

        collector = threading.Thread(target=collect, daemon=True)
        collector.start()
        loaded = reads(base, cookies, samples * 2, 0.5)
        source.join()
        collector.join(timeout=30)
        stop.set()
        for page in pages:
            page.join(timeout=30)
    finally:
        if source is not None and source.is_alive():
            source.terminate()
        server.terminate()
        server.wait(timeout=30)

    def line(name, values):
        ms = [v * 1000 for v in values]
        return f"{name:58} p50 {percentile(ms, 50):7.0f} ms  p95 {percentile(ms, 95):7.0f} ms  (n={len(ms)})"

    print(
        f"{args.jobs} waiting, {args.pages} live pages, an event a second for {args.seconds} s, load {os.getloadavg()[0]:.1f}"
    )
    print(line("queue page alone (baseline)", alone))
    print(line(f"queue page with {args.pages} live pages and the events", loaded))
    if delays:
        print(line("event commit -> a live page has fetched its new rows", delays))
    print(f"ratio p95 loaded / alone: {percentile(loaded, 95) / percentile(alone, 95):.2f}x")


if __name__ == "__main__":
    main()
