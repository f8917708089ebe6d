"""Retention at 100,000 finished jobs (each with three transitions, an audit entry, a log chunk, two
events, an attempt and an allocation): memory (the process's peak RSS above its size before, sampled
every 50 ms) of a cleanup of 10% of them against one of the other 90% (bounded memory: the two stay
alike however many go), the longest single cleanup
transaction against GPUQ_TICK_SECONDS, and the scheduler's tick latency while the cleanup runs against
ticks alone, all in the same process. 100 running and 100 waiting jobs must be left untouched.

    .venv/bin/python benchmarks/cleanup.py [--jobs 100000] [--database-url postgres://…/empty_db]
"""

import argparse
import gzip
import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, register_nodes, setup_django  # noqa: E402

NOW = datetime(2026, 6, 1, tzinfo=UTC)
OLDEST = NOW - timedelta(days=100)  # the first 10% finished then
OLD = NOW - timedelta(days=40)  # the other 90%


def populate(n: int) -> tuple[list[int], int]:
    """`n` finished jobs with their rows; 100 running and 100 waiting (paused) ones. Returns the active ids and
    how many rows the finished jobs have in all."""
    from django.contrib.auth import get_user_model

    from accounts.models import Level, Profile
    from gpus.models import Allocation, Gpu
    from scheduling.models import Attempt, Event, Job, JobAudit, JobStateTransition, LogChunk
    from scheduling.states import Status

    user = get_user_model().objects.create_user(username="alice", password="x")
    Profile.objects.create(user=user, level=Level.RESEARCHER)
    register_nodes(4)
    gpu = Gpu.objects.first()
    chunk = 5000
    for start in range(0, n, chunk):
        count = min(chunk, n - start)
        finished = [OLDEST if start + i < n // 10 else OLD for i in range(count)]
        jobs = Job.objects.bulk_create(
            Job(
                owner=user,
                name=f"sweep-{start + i}",
                argv=["/bin/true"],
                status=Status.COMPLETED,
                submitted_at=finished[i] - timedelta(hours=1),
                queue_order=1.0,
                finished_at=finished[i],
                updated_at=finished[i],
            )
            for i in range(count)
        )
        steps = (("", Status.PENDING), (Status.PENDING, Status.RUNNING), (Status.RUNNING, Status.COMPLETED))
        JobStateTransition.objects.bulk_create(
            JobStateTransition(job=j, from_status=a, to_status=b, at=j.finished_at, reason="bench")
            for j in jobs
            for a, b in steps
        )
        JobAudit.objects.bulk_create(JobAudit(job=j, action="priority", detail="10 → 20") for j in jobs)
        LogChunk.objects.bulk_create(
            LogChunk(job=j, attempt=1, offset=0, size=64, data=b"x" * 64) for j in jobs
        )
        Event.objects.bulk_create(
            Event(kind=Event.Kind.JOB, job_id=j.pk, at=j.finished_at, data={"id": j.pk})
            for j in jobs
            for _ in (1, 2)
        )
        Attempt.objects.bulk_create(
            Attempt(job=j, number=1, lease_token="t" * 32, ended_at=j.finished_at) for j in jobs
        )
        Allocation.objects.bulk_create(
            Allocation(gpu=gpu, job=j, attempt=1, released_at=j.finished_at) for j in jobs
        )
    running = [
        Job.objects.create(owner=user, argv=["/bin/true"], status=Status.RUNNING, submitted_at=OLDEST)
        for _ in range(100)
    ]
    waiting = [
        Job.objects.create(owner=user, argv=["/bin/true"], status=Status.PAUSED, submitted_at=OLDEST)
        for _ in range(100)
    ]
    return [j.pk for j in running + waiting], n * 9


class Ticker(threading.Thread):
    """Ticks every PERIOD seconds (its own database connection) until stopped; records each tick's
    duration, waiting for the database's lock included."""

    PERIOD = 0.25

    def __init__(self):
        super().__init__(daemon=True)
        self.stopping = threading.Event()
        self.durations: list[float] = []

    def run(self):
        from django.db import connection

        from scheduling.tick import tick

        try:
            while not self.stopping.is_set():
                started = time.perf_counter()
                tick()
                self.durations.append(time.perf_counter() - started)
                self.stopping.wait(self.PERIOD)
        finally:
            connection.close()


def ticks_alone(seconds: float) -> list[float]:
    ticker = Ticker()
    ticker.start()
    time.sleep(seconds)
    ticker.stopping.set()
    ticker.join()
    return ticker.durations


def timed_transactions():
    """Record how long each of retention's transactions holds the database (on SQLite, its write lock):
    from the moment `atomic` is entered (the lock is taken) to the end of its commit."""
    import contextlib
    import types

    from django.db import transaction

    from scheduling import retention

    held: list[float] = []

    @contextlib.contextmanager
    def atomic(*args, **kwargs):
        with transaction.atomic(*args, **kwargs):
            started = time.perf_counter()
            yield
        held.append(time.perf_counter() - started)

    retention.transaction = types.SimpleNamespace(atomic=atomic)
    return held


def rss() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cleanup(cutoff: datetime):
    """Run one cleanup; returns what it removed, how long it took, and its peak RSS growth."""
    import gc

    from scheduling import retention

    gc.collect()
    before, peak, done = rss(), [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss())
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    removed = retention.jobs_cleanup(finished_before=cutoff, now=NOW)
    took = time.perf_counter() - started
    done.set()
    sampler.join()
    return removed, took, max(0, max(peak[0], rss()) - before)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    setup_django("gpuq-bench-cleanup-", args.database_url)
    from django.conf import settings
    from django.core.management import call_command

    from scheduling import archive
    from scheduling.models import Event, Job

    settings.GPUQ_EVENT_TICKS = False  # ticks only from the ticker thread
    call_command("migrate", verbosity=0)
    engine = settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1]
    started = time.perf_counter()
    active, rows = populate(args.jobs)
    print(f"{args.jobs} finished jobs ({rows} rows) made in {time.perf_counter() - started:.1f} s ({engine})")
    print(
        f"batch size GPUQ_RETENTION_BATCH={settings.GPUQ_RETENTION_BATCH}, tick period {settings.GPUQ_TICK_SECONDS} s"
    )

    alone = ticks_alone(5.0)
    batches = timed_transactions()
    small, small_took, small_peak = cleanup(OLDEST + timedelta(days=1))
    ticker = Ticker()
    ticker.start()
    large, large_took, large_peak = cleanup(NOW - timedelta(days=30))
    ticker.stopping.set()
    ticker.join()

    print(
        f"cleanup of {small.jobs:>6} jobs: {small_took:6.1f} s, peak RSS growth {small_peak / 2**20:6.2f} MiB"
    )
    print(
        f"cleanup of {large.jobs:>6} jobs: {large_took:6.1f} s, peak RSS growth {large_peak / 2**20:6.2f} MiB"
    )
    print(
        f"memory: x{large.jobs / max(small.jobs, 1):.0f} the jobs, peak RSS growth "
        f"{large_peak / 2**20:.2f} MiB against {small_peak / 2**20:.2f} MiB (bounded: alike, not x9)"
    )
    print(
        f"cleanup transactions: {len(batches)}, longest hold {max(batches) * 1000:.0f} ms, "
        f"p95 {percentile(batches, 95) * 1000:.0f} ms (a tick period is {settings.GPUQ_TICK_SECONDS * 1000:.0f} ms)"
    )
    during = ticker.durations
    print(
        f"tick alone: n={len(alone)} p50 {percentile(alone, 50) * 1000:.1f} ms, max {max(alone) * 1000:.1f} ms; "
        f"during cleanup: n={len(during)} p50 {percentile(during, 50) * 1000:.1f} ms, "
        f"max {max(during) * 1000:.1f} ms (ratio of max x{max(during) / max(alone):.1f})"
    )
    lines = sum(1 for _ in archive.read(archive.path_for(NOW)))
    size = archive.path_for(NOW).stat().st_size
    with gzip.open(archive.path_for(NOW), "rb") as raw:
        raw_size = sum(len(block) for block in iter(lambda: raw.read(1 << 20), b""))
    print(f"archive: {lines} lines, {size / 2**20:.1f} MiB gzipped ({raw_size / 2**20:.1f} MiB raw)")
    left = set(Job.objects.values_list("pk", flat=True))
    print(
        f"left: {len(left)} jobs (the 200 active untouched: {left == set(active)}), "
        f"{Event.objects.count()} events, removed {small.jobs + large.jobs} jobs"
    )
    assert left == set(active), "an active job was removed"


if __name__ == "__main__":
    main()
