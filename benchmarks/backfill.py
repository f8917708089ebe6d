"""GPU use with backfill against strict priority order, by trace replay through the real planner.

A synthetic trace of jobs (1 to 8 GPUs, run times of minutes to hours, each with a time limit at or
above its run time) is replayed in simulated time on 2 nodes × 8 GPUs: at each arrival or end, `plan()`
decides what starts; a started job runs its real run time. The same trace runs with strict order and
with conservative backfill. Printed: GPU utilisation until the last job ends, waits, and how the jobs
that were first in line (the ones backfill must not delay) fared.

    .venv/bin/python benchmarks/backfill.py [--jobs 400] [--seed 1]
"""

import argparse
import random
import statistics
import sys
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gpus.placement import NodeFree  # noqa: E402
from scheduling.planner import PendingJob, Policies, RunningJob, Snapshot, plan  # noqa: E402

T0 = datetime(2026, 11, 23, tzinfo=UTC)
NODES = {"a": 8, "b": 8}


def trace(n, seed):
    rng = random.Random(seed)
    jobs = []
    for i in range(1, n + 1):
        gpus = rng.choice([1, 1, 1, 2, 2, 4, 8])
        runtime = rng.choice([5, 10, 30, 60, 120, 240]) * 60 * rng.uniform(0.5, 1.0)
        limit = runtime * rng.uniform(1.0, 2.0)
        arrival = rng.uniform(0, 6 * 3600) if i > n // 4 else 0.0  # a burst, then a stream over 6 h
        jobs.append((i, gpus, rng.choice([0, 10, 10, 20]), arrival, runtime, limit))
    return jobs


def replay(jobs, policies):
    t = 0.0
    arrivals = sorted(jobs, key=lambda j: j[3])
    waiting: dict[int, PendingJob] = {}
    running: list[tuple[float, RunningJob, tuple[int, ...]]] = []
    free = {name: list(range(n)) for name, n in NODES.items()}
    start: dict[int, float] = {}
    head_at_start: set[int] = set()
    meta = {j[0]: j for j in jobs}
    k = 0
    busy_gpu_seconds = 0.0
    while k < len(arrivals) or waiting or running:
        while k < len(arrivals) and arrivals[k][3] <= t:
            i, gpus, priority, arrival, _, limit = arrivals[k]
            waiting[i] = PendingJob(i, gpus, priority, T0 + timedelta(seconds=arrival), time_limit=limit)
            k += 1
        now = T0 + timedelta(seconds=t)
        snap = Snapshot(
            pending=tuple(waiting.values()),
            running=tuple(r for _, r, _ in running),
            policies=policies,
            nodes=tuple(NodeFree(name, tuple(g)) for name, g in free.items()),
        )
        result = plan(snap, now)
        if result.order:
            head_at_start.add(result.order[0])
        for s in result.starts:
            job = waiting.pop(s.job_id)
            start[s.job_id] = t
            free[s.node] = [g for g in free[s.node] if g not in s.gpus]
            runtime = meta[s.job_id][4]
            busy_gpu_seconds += runtime * job.gpu_count
            running.append(
                (
                    t + runtime,
                    RunningJob(s.job_id, s.node, job.gpu_count, now, time_limit=job.time_limit),
                    s.gpus,
                )
            )
        upcoming = [end for end, _, _ in running] + ([arrivals[k][3]] if k < len(arrivals) else [])
        if not upcoming:
            break
        t = min(upcoming)
        still = []
        for end, r, gpus in running:
            if end <= t:
                free[r.node].extend(gpus)
            else:
                still.append((end, r, gpus))
        running = still
    makespan = max(start[i] + meta[i][4] for i in start)
    waits = [start[i] - meta[i][3] for i in start]
    return {
        "utilisation": busy_gpu_seconds / (sum(NODES.values()) * makespan),
        "makespan_h": makespan / 3600,
        "mean_wait_min": statistics.mean(waits) / 60,
        "p95_wait_min": sorted(waits)[int(0.95 * (len(waits) - 1))] / 60,
        "start": start,
        "heads": head_at_start,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    jobs = trace(args.jobs, args.seed)
    strict = replay(jobs, Policies())
    backfill = replay(jobs, replace(Policies(), backfill=True))
    print(f"trace replay: {args.jobs} jobs on 2 nodes x 8 GPUs, seed {args.seed}")
    for name, r in (("strict order", strict), ("backfill", backfill)):
        print(
            f"  {name:<13} GPU utilisation {r['utilisation'] * 100:5.1f}%  makespan {r['makespan_h']:5.2f} h  "
            f"mean wait {r['mean_wait_min']:6.1f} min  p95 wait {r['p95_wait_min']:6.1f} min"
        )
    print(f"  utilisation ratio backfill / strict: {backfill['utilisation'] / strict['utilisation']:.2f}x")
    eight = [j[0] for j in jobs if j[1] == 8]
    later = [i for i in eight if backfill["start"][i] > strict["start"][i] + 1e-6]
    print(
        f"  8-GPU jobs: mean wait {statistics.mean(backfill['start'][i] - jobs[i - 1][3] for i in eight) / 60:.1f} min "
        f"with backfill vs {statistics.mean(strict['start'][i] - jobs[i - 1][3] for i in eight) / 60:.1f} min strict; "
        f"{len(later)} of {len(eight)} started later than under strict order"
    )


if __name__ == "__main__":
    main()
