"""Generate benchmarks/traces/synthetic-3000.csv: 3,000 jobs over 12 days on 22 nodes x 8 GPUs, shaped like
the published statistics of the Philly (Jeon et al., ATC'19) and Helios (Hu et al., SC'21) GPU clusters.
No public trace could be fetched here (only Git LFS pointers came back); see README.md beside this file.

    .venv/bin/python benchmarks/traces/make_trace.py   # deterministic (seed 13)
"""

import math
import random
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scheduling.simulator import TraceJob  # noqa: E402
from scheduling.traces import to_csv  # noqa: E402

JOBS, DAYS, USERS = 3000, 12, 60
# Share of jobs by GPU count: most jobs use one GPU, few use many, but those hold much of the GPU time.
GPU_MIX = ((1, 0.68), (2, 0.09), (4, 0.10), (8, 0.10), (16, 0.02), (32, 0.01))
LIMITS = [h * 3600 for h in (0.25, 0.5, 1, 2, 4, 8, 12, 24, 48, 72, 168)]  # what users type


def job_runtime(rng: random.Random) -> float:
    # Heavy tail: median about 90 minutes, a few jobs run for days (log-normal, clipped to 10 s .. 7 d).
    return min(7 * 86400.0, max(10.0, math.exp(rng.gauss(math.log(5400), 2.0))))


def main() -> None:
    rng = random.Random(13)
    weights = [1 / (i + 1) ** 1.1 for i in range(USERS)]  # a few heavy users submit most jobs (Zipf)
    jobs: list[TraceJob] = []
    t = 0.0
    while len(jobs) < JOBS:
        # Arrivals: a day-night cycle (busier by day), in bursts of similar jobs from one user.
        hour = (t / 3600) % 24
        rate = (0.6 + 0.8 * math.sin(math.pi * (hour - 6) / 12) ** 2) / (DAYS * 86400 / (JOBS / 2.2))
        t += rng.expovariate(rate)
        user = rng.choices(range(USERS), weights)[0]
        gpus = rng.choices([g for g, _ in GPU_MIX], [w for _, w in GPU_MIX])[0]
        runtime = job_runtime(rng)
        priority = rng.choices([0, 10, 20], [0.1, 0.75, 0.15])[0]
        for _ in range(min(JOBS - len(jobs), rng.choice([1, 1, 1, 2, 3, 5]))):
            ran = runtime * rng.uniform(0.7, 1.3)
            guess = ran * math.exp(abs(rng.gauss(0.8, 0.8)))  # users over-estimate, by 2-3x typically
            limit = next((x for x in LIMITS if x >= guess), LIMITS[-1])
            jobs.append(
                TraceJob(
                    len(jobs) + 1,
                    round(t + rng.uniform(0, 60)),
                    gpus,
                    round(min(ran, limit)),
                    f"u{user:02d}",
                    f"team{user % 7}",
                    priority,
                    limit,
                )
            )
    jobs.sort(key=lambda j: (j.submit, j.id))
    out = Path(__file__).with_name("synthetic-3000.csv")
    out.write_text(to_csv(jobs))
    gpu_seconds = sum(j.gpus * j.runtime for j in jobs)
    print(
        f"{out}: {len(jobs)} jobs, {jobs[-1].submit / 86400:.1f} days, "
        f"offered load {gpu_seconds / (176 * jobs[-1].submit):.2f} of 176 GPUs"
    )


if __name__ == "__main__":
    main()
