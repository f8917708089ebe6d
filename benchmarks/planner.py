"""Cost of one plan() with 1,000, 10,000 and 100,000 pending jobs on 8 nodes × 8 GPUs with every policy
on (limits, fair share, ageing, quotas, off-peak, dependencies, conflicts, expiry, backfill, preemption),
and of one whole tick (database included) with 10,000 pending jobs on the embedded default (SQLite).

The baseline, measured in the same run, is sorting the same jobs by priority and submit time: the least
any ordered queue must do. Growth is reported as the ratio of costs per job between sizes (n log n
predicts about 1.2-1.3 for ×10).

    .venv/bin/python benchmarks/planner.py [--sizes 1000,10000,100000] [--tick-size 10000]
"""

import argparse
import random
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import fresh_database_url, register_nodes, setup_django  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def timed(fn, repeat):
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def synthetic(n, rng, now):
    from datetime import time as dtime

    from gpus.placement import NodeFree
    from scheduling.planner import (
        Ageing,
        Limits,
        OffPeak,
        PendingJob,
        Policies,
        Preemption,
        Quota,
        RunningJob,
        Snapshot,
    )

    nodes = tuple(NodeFree(f"node{i}", tuple(range(8)) if i < 2 else tuple(range(6, 8))) for i in range(8))
    running = tuple(
        RunningJob(
            id=10_000_000 + i,
            node=f"node{2 + i // 3}",
            gpu_count=2,
            started_at=now - timedelta(minutes=rng.randint(1, 600)),
            owner=rng.randint(1, 50),
            team=rng.randint(1, 8),
            priority=rng.choice([-10, 0, 10]),
            resources=(f"model:{rng.randint(1, 20)}",) if rng.random() < 0.3 else (),
            time_limit=rng.choice([3600.0, 7200.0, None]),
            preemptible=rng.random() < 0.3,
        )
        for i in range(18)
    )
    pending = tuple(
        PendingJob(
            id=i + 1,
            gpu_count=rng.choice([1, 1, 1, 2, 4, 8]),
            priority=rng.choice([-10, 0, 10, 10, 20, 30]),
            submitted_at=now - timedelta(seconds=rng.randint(0, 7 * 86400)),
            owner=rng.randint(1, 50),
            team=rng.choice([None, *range(1, 9)]),
            off_peak_only=rng.random() < 0.1,
            depends_on=(rng.randint(1, n),) if rng.random() < 0.05 else (),
            resources=(f"model:{rng.randint(1, 20)}",) if rng.random() < 0.2 else (),
            time_limit=rng.choice([600.0, 3600.0, 14400.0, None]),
        )
        for i in range(n)
    )
    policies = Policies(
        limits=Limits(max_concurrent=60, user_max_concurrent=4, team_max_concurrent=12),
        fair_share=True,
        ageing=Ageing(3600, 1, 20),
        off_peak=OffPeak(dtime(22), dtime(8), "Europe/Paris"),
        serial=None,
        expiry_seconds=30 * 86400,
        backfill=True,
        backfill_depth=100,
        preemption=Preemption(30, 0),
    )
    return Snapshot(
        pending=pending,
        nodes=nodes,
        running=running,
        policies=policies,
        user_day={u: rng.uniform(0, 40_000) for u in range(1, 51)},
        user_week={u: rng.uniform(0, 200_000) for u in range(1, 51)},
        user_quota={u: Quota(daily=36_000, weekly=180_000) for u in range(1, 51, 2)},
        team_quota={t: Quota(weekly=1_000_000) for t in range(1, 9)},
        team_week={t: rng.uniform(0, 1.2e6) for t in range(1, 9)},
        user_share={u: rng.uniform(0, 1e5) for u in range(1, 51)},
        team_share={t: rng.uniform(0, 1e6) for t in range(1, 9)},
        completed=frozenset(range(1, n, 3)),
        dead=frozenset(range(2, n, 97)),
    )


def bench_plan(sizes):
    from scheduling.planner import plan, queue_order

    rng = random.Random(7)
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    rows = []
    for n in sizes:
        snap = synthetic(n, rng, now)
        repeat = 5 if n <= 10_000 else 2
        cost = timed(lambda snap=snap: plan(snap, now), repeat)
        base = timed(
            lambda snap=snap: sorted(snap.pending, key=lambda j: (-j.priority, j.submitted_at, j.id)), repeat
        )
        order = timed(lambda snap=snap: queue_order(snap, now), repeat)
        result = plan(snap, now)
        rows.append((n, cost, base, order, len(result.starts), len(result.reservations)))
    print("plan() on 8 nodes x 8 GPUs, all policies on (median of runs)")
    print(
        f"{'pending':>8} {'plan':>10} {'per job':>9} {'sort only':>10} {'plan/sort':>9} {'order':>9} {'starts':>6} {'resv':>5}"
    )
    for n, cost, base, order, starts, resv in rows:
        print(
            f"{n:>8} {cost * 1000:>8.1f}ms {cost / n * 1e6:>7.2f}us {base * 1000:>8.1f}ms {cost / base:>8.1f}x "
            f"{order * 1000:>7.1f}ms {starts:>6} {resv:>5}"
        )
    for (n1, c1, *_), (n2, c2, *_) in zip(rows, rows[1:], strict=False):
        print(
            f"growth {n1}->{n2}: cost per job x{(c2 / n2) / (c1 / n1):.2f} (n log n predicts x{__import__('math').log(n2) / __import__('math').log(n1):.2f})"
        )


def bench_tick(n):
    setup_django("gpuq-bench-", fresh_database_url())  # SQLite, or a fresh database beside DATABASE_URL's
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, transaction
    from django.utils import timezone

    from scheduling import selectors, ticker
    from scheduling.models import Job, PolicyType
    from scheduling.planner import plan
    from scheduling.policies import set_policy
    from scheduling.tick import tick

    call_command("migrate", verbosity=0)
    ticker.request_tick = lambda: None  # measure ticks we run, not the ones the set-up would trigger
    rng = random.Random(7)
    users = [get_user_model().objects.create_user(f"user{i}") for i in range(50)]
    register_nodes(8)
    for policy, config in [
        (PolicyType.CONCURRENCY, {"max_concurrent": 60, "user_max_concurrent": 4}),
        (PolicyType.FAIR_SHARE, {}),
        (PolicyType.AGEING, {}),
        (PolicyType.OFF_PEAK, {}),
        (PolicyType.EXPIRY, {"max_wait_hours": 720}),
        (PolicyType.BACKFILL, {}),
        (PolicyType.PREEMPTION, {}),
    ]:
        set_policy(policy, enabled=True, config=config)
    now = timezone.now()
    with transaction.atomic():
        Job.objects.bulk_create(
            Job(
                owner=rng.choice(users),
                argv=["true"],
                gpu_count=rng.choice([1, 1, 2, 4, 8]),
                status="pending",
                priority=rng.choice([0, 10, 20]),
                submitted_at=now - timedelta(seconds=rng.randint(0, 86400)),
                queue_order=0.0 + i,
                time_limit_seconds=rng.choice([600, 3600, None]),
                resources=[f"model:{rng.randint(1, 20)}"] if rng.random() < 0.2 else [],
            )
            for i in range(n)
        )
    import django_q.tasks as tasks

    tasks_async = tasks.async_task
    import scheduling.tick as tick_module

    tick_module.async_task = lambda *a, **k: None  # no cluster here: measure the tick, not the broker
    first = timed(lambda: tick(), 1)  # fills the GPUs: dispatches up to the limits
    steady = timed(lambda: tick(), 5)  # the usual tick: nothing can start, reasons already stored
    snap_cost = timed(lambda: selectors.snapshot(), 5)
    snap = selectors.snapshot()
    plan_cost = timed(lambda: plan(snap, timezone.now()), 5)
    tick_module.async_task = tasks_async
    started = Job.objects.filter(status="dispatched").count()
    print(f"\nwhole tick on {connection.vendor} with {n} pending jobs, 8 nodes x 8 GPUs, policies on:")
    print(f"  first tick (dispatches {started} jobs, stores {n - started} reasons): {first * 1000:.0f} ms")
    print(
        f"  steady tick: {steady * 1000:.0f} ms  = snapshot {snap_cost * 1000:.0f} ms + plan {plan_cost * 1000:.0f} ms + apply"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--tick-size", type=int, default=10000)
    args = parser.parse_args()
    bench_plan([int(s) for s in args.sizes.split(",")])
    if args.tick_size:
        bench_tick(args.tick_size)


if __name__ == "__main__":
    main()
