"""GPU use with backfill against strict priority order, by trace replay through the real planner.

A synthetic trace of jobs (1 to 8 GPUs, run times of minutes to hours, each with a time limit at or
above its run time) is replayed by the what-if simulator (scheduling.simulator) on 2 nodes × 8 GPUs: at
each arrival or end, `plan()` decides what starts; a started job runs its real run time. The same trace runs with strict order and
with conservative backfill. Printed: GPU utilisation until the last job ends, waits, and how the jobs
that were first in line (the ones backfill must not delay) fared.

    .venv/bin/python benchmarks/backfill.py [--jobs 400] [--seed 1]
"""

import argparse
import random
import statistics
import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scheduling.planner import Policies  # noqa: E402
from scheduling.simulator import Setup, TraceJob, measure  # noqa: E402
from scheduling.simulator import replay as simulate  # noqa: E402

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
    """The trace through the simulator (scheduling.simulator: the real plan() on an event clock)."""
    trace = [
        TraceJob(i, arrival, gpus, runtime, "user", priority=priority, time_limit=limit)
        for i, gpus, priority, arrival, runtime, limit in jobs
    ]
    nodes = list(NODES.items())
    out = simulate(trace, Setup(policies), nodes)
    figures = measure(trace, out, nodes)
    return {
        "utilisation": figures["utilization"],
        "makespan_h": figures["makespan_hours"],
        "mean_wait_min": figures["wait"]["mean"] / 60,
        "p95_wait_min": figures["wait"]["p95"] / 60,
        "start": out.start,
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
