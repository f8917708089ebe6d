"""Submissions and finishes as the queue grows: 8 clients submitting single jobs over HTTP, and 8
simultaneous finishes, with an empty queue (the baseline, same run) and with 10,000 jobs waiting.

A change only asks for a tick (scheduling.ticker); the ticker thread of the process that asked plans
afterwards. So a submit or a finish should cost the same whatever waits in the queue.

Runs a real web server (`gpuq_web`, Daphne) on a fresh database: SQLite in a temporary folder, or with
DATABASE_URL set to PostgreSQL a fresh database on that server (dropped at the end). No node runs: the
jobs wait (the queue fills), and finishes are recorded here as an executor records them.

    .venv/bin/python benchmarks/submits.py [--submits 400] [--waiting 10000] [--workers 1]
    SECRET_KEY=… DATABASE_URL=postgres://postgres@127.0.0.1:5432/gpuq .venv/bin/python benchmarks/submits.py
"""

import argparse
import socket
import statistics
import threading
import time
import uuid

from _common import fresh_database_url, percentile, setup_django, start_web  # benchmarks/ is on sys.path

CLIENTS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process so far: what a submission costs the web process (its
    requests and its ticker thread), a figure that a busy machine slows less than a rate."""
    import os

    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def submit_rate(base: str, key: str, count: int) -> tuple[float, list[float]]:
    """Jobs per second for `count` single submissions from CLIENTS threads, and each one's latency."""
    import httpx

    latencies: list[float] = []
    errors: list[str] = []
    per_client = count // CLIENTS

    def client():
        with httpx.Client(base_url=base, headers={"Authorization": f"Token {key}"}, timeout=60) as http:
            for _ in range(per_client):
                started = time.perf_counter()
                response = http.post("/api/v1/jobs", json={"argv": ["true"], "gpu_count": 1})
                latencies.append(time.perf_counter() - started)
                if response.status_code != 201:
                    errors.append(f"{response.status_code} {response.text[:200]}")

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    took = time.perf_counter() - started
    if errors:
        raise SystemExit(f"{len(errors)} submissions failed, e.g. {errors[0]}")
    return per_client * CLIENTS / took, latencies


def wait_for_ticks(timeout: float = 300) -> None:
    """Until the web process's ticker has covered every ask (TickState: done catches up with asked)."""
    from scheduling.models import TickState

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        asked, done = TickState.objects.filter(pk=1).values_list("asked", "done").first() or (0, 0)
        if done >= asked:
            return
        time.sleep(0.2)
    raise SystemExit("the web process's ticker did not catch up")


def fill(user, waiting: int) -> None:
    """Top the queue up to `waiting` pending jobs (set-up, in bulk) and let one tick store its plan."""
    from django.utils import timezone

    from scheduling import ticker
    from scheduling.models import Job
    from scheduling.states import Status

    missing = waiting - Job.objects.filter(status=Status.PENDING).count()
    now = timezone.now()
    Job.objects.bulk_create(
        [
            Job(owner=user, status=Status.PENDING, gpu_count=1, argv=["true"], submitted_at=now)
            for _ in range(max(0, missing))
        ],
        batch_size=2000,
    )
    ticker.run(force=True, wait=True)


def running_jobs(user, node, on_gpus: bool = True) -> list:
    """One running job on each GPU of the node, as the executor leaves them, with their attempts
    (`on_gpus=False`: as many, holding no allocation: the finishing processes' warm-up jobs)."""
    from django.utils import timezone

    from gpus.models import Allocation
    from scheduling.models import Attempt, Job
    from scheduling.states import Status

    jobs = []
    for gpu in node.gpus.order_by("index"):
        token = uuid.uuid4().hex
        job = Job.objects.create(
            owner=user,
            status=Status.RUNNING,
            gpu_count=1,
            argv=["true"],
            node=node,
            gpu_indices=[gpu.index],
            lease_token=token,
            started_at=timezone.now(),
        )
        if on_gpus:
            Allocation.objects.create(gpu=gpu, job=job, attempt=job.attempt)
        Attempt.objects.create(
            job=job, number=job.attempt, node=node, gpu_indices=[gpu.index], lease_token=token,
            dispatched_at=timezone.now(), started_at=timezone.now(),
        )  # fmt: skip
        jobs.append(job)
    return jobs


def finish_all(jobs, warm_ups) -> list[float]:
    """Record every job's outcome at once, each from its own process on its own open connection, as
    executors do (threads of one process would queue on its GIL); each one's latency. Each process
    first finishes a warm-up job of its own, as a long-lived executor has finished others before."""
    import multiprocessing

    from django.db import connections

    connections.close_all()  # a forked child must not share the parent's connection
    fork = multiprocessing.get_context("fork")
    barrier, results = fork.Barrier(len(jobs)), fork.Queue()
    children = [
        fork.Process(target=_finish, args=(job, warm_up, barrier, results))
        for job, warm_up in zip(jobs, warm_ups, strict=True)
    ]
    for child in children:
        child.start()
    latencies = [results.get(timeout=300) for _ in children]
    for child in children:
        child.join()
    return latencies


def _finish(job, warm_up, barrier, results) -> None:
    from django.db import connection

    from scheduling import ticker
    from scheduling.states import Status
    from scheduling.transitions import TransitionConflict, transition

    # An executor is a warm process holding its database connection (GPUQ_DB_CONN_MAX_AGE): connect,
    # run the finish's code once refused (a wrong lease) and once through (the warm-up job, and the tick
    # it asked for) before the clock starts, so what is timed is the finish, not a connection set-up or
    # a new fork's first touch of its memory. (Until this version only the refused path was warmed up.)
    connection.ensure_connection()
    try:
        transition(job, Status.COMPLETED, token="warm-up", reason="exit 0", exit_code=0)
    except TransitionConflict:
        pass
    transition(warm_up, Status.COMPLETED, token=warm_up.lease_token, reason="exit 0", exit_code=0)
    ticker.settle(300)
    barrier.wait()
    started = time.perf_counter()
    transition(job, Status.COMPLETED, token=job.lease_token, reason="exit 0", exit_code=0)
    results.put(time.perf_counter() - started)
    ticker.settle(300)  # the tick this finish asked for, if this process won the lock
    connection.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--submits", type=int, default=400, help="submissions measured at each size")
    parser.add_argument("--waiting", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=1, help="web processes (GPUQ_WEB_WORKERS)")
    args = parser.parse_args()

    setup_django("gpuq-bench-submits-", fresh_database_url())
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Permission
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import ApiToken, Level, Profile
    from gpus.inventory import parse_declared
    from gpus.services import node_register
    from scheduling import ticker

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_user("bench", password="bench-only")
    Profile.objects.create(user=user, level=Level.RESEARCHER)
    user.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    _, key = ApiToken.issue(user=user)
    server, base = start_web(
        free_port(),
        GPUQ_THROTTLE_SUBMIT="1000000/min",
        GPUQ_THROTTLE_USER="1000000/min",
        GPUQ_WEB_WORKERS=str(args.workers),
    )
    figures = {}
    try:
        # A node whose 8 GPUs are all busy: submissions are accepted and wait.
        node = node_register(
            name="bench", backend="declared", gpus=parse_declared("8x80GB", node_name="bench"),
            labels={}, boot_id="",
        )  # fmt: skip
        figures[("finish", "empty queue")] = finish_all(
            running_jobs(user, node), running_jobs(user, node, on_gpus=False)
        )
        ticker.settle(120)
        jobs = running_jobs(user, node)
        submit_rate(base, key, CLIENTS * 4)  # warm up
        for label, waiting in (("empty queue", 0), (f"{args.waiting:,} waiting", args.waiting)):
            if waiting:
                fill(user, waiting)
            cpu = cpu_seconds(server.pid)
            figures[("submit", label)] = submit_rate(base, key, args.submits)
            # ...and the ticks those submissions asked for, which the web process runs afterwards too.
            wait_for_ticks()
            figures[("cpu", label)] = (cpu_seconds(server.pid) - cpu) / args.submits
        figures[("finish", f"{args.waiting:,} waiting")] = finish_all(
            jobs, running_jobs(user, node, on_gpus=False)
        )
        ticker.settle(300)
    finally:
        server.terminate()
        server.wait(timeout=30)

    print(
        f"submissions and finishes ({connection.vendor}; {CLIENTS} clients over HTTP, "
        f"{args.workers} Daphne process(es))"
    )
    for (what, label), value in figures.items():
        if what == "submit":
            rate, latencies = value
            print(
                f"  submit, {label:<16} {rate:7.1f} jobs/s  p50={statistics.median(latencies) * 1000:6.1f} ms"
                f"  p95={percentile(latencies, 95) * 1000:6.1f} ms"
            )
    empty, full = figures[("submit", "empty queue")][0], figures[("submit", f"{args.waiting:,} waiting")][0]
    print(f"  ratio of rates, {args.waiting:,} waiting / empty: {full / empty:.2f}")
    for (what, label), value in figures.items():
        if what == "cpu" and args.workers == 1:  # (with several, the CPU is the children's)
            print(
                f"  web process CPU per submission (its ticks included), {label:<16} {value * 1000:6.1f} ms"
            )
    for (what, label), value in figures.items():
        if what == "finish":
            each = " ".join(f"{v * 1000:.0f}" for v in sorted(value))
            print(
                f"  8 simultaneous finishes, {label:<16} max={max(value) * 1000:6.1f} ms  each (ms): {each}"
            )
    empty = max(figures[("finish", "empty queue")])
    full = max(figures[("finish", f"{args.waiting:,} waiting")])
    print(f"  ratio of slowest finish, {args.waiting:,} waiting / empty: {full / empty:.2f}")


if __name__ == "__main__":
    main()
