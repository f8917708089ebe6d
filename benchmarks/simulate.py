"""Policy sets judged by the what-if simulator on a trace: each against strict FIFO and plain backfill.

Replays benchmarks/traces/synthetic-3000.csv (or --trace) through the real plan() on 22 nodes × 8 GPUs (or
--nodes) under each set, and prints the comparison table (utilisation, waits in minutes overall and per
GPU-count class as mean/p95/max, Jain's index, starts out of order), then each set's mean wait per class
as a ratio to strict FIFO's and to plain backfill's, and the time the replays took. No database is used.

    .venv/bin/python benchmarks/simulate.py [--trace FILE] [--nodes 8,8,...] [--every K] [--with JSON] \
        [--sets 'backfill + fair share,...']

One 8-GPU machine with the fresh install's caps (the README's second case):
    .venv/bin/python benchmarks/simulate.py --nodes 8 --every 22 \
        --with '{"concurrency": {"max_concurrent": 5, "user_max_concurrent": 2}}'
"""

import argparse
import json
import sys
import time
from pathlib import Path

from _common import setup_django  # noqa: E402  (benchmarks/ is on sys.path when run as a script)

HERE = Path(__file__).resolve().parent
SETS = {
    "strict FIFO": {},
    "backfill": {"backfill": {}},
    "backfill + shortest limit": {"backfill": {}, "ordering": {"within_priority": "shortest_limit"}},
    "backfill + fewest GPUs": {"backfill": {}, "ordering": {"within_priority": "fewest_gpus"}},
    "backfill + fair share": {"backfill": {}, "fair_share": {}},
    "backfill + ageing": {"backfill": {}, "ageing": {}},
    "bf + fair + shortest": {
        "backfill": {},
        "fair_share": {},
        "ordering": {"within_priority": "shortest_limit"},
    },
    "strict + shortest limit": {"ordering": {"within_priority": "shortest_limit"}},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trace", type=Path, default=HERE / "traces" / "synthetic-3000.csv")
    parser.add_argument("--nodes", default=",".join(["8"] * 22))
    parser.add_argument(
        "--every", type=int, default=1, help="replay every K-th job only (a smaller cluster's load)"
    )
    parser.add_argument("--with", dest="common", default="{}", help="policies (JSON) added to every set")
    parser.add_argument(
        "--sets",
        help="the sets to replay, comma-separated names (default all; strict FIFO and backfill always)",
    )
    args = parser.parse_args()
    setup_django("gpuq-bench-")
    from scheduling import simulations, simulator, traces

    jobs, epoch = traces.parse_csv(args.trace.read_text(), max_jobs=100_000)
    jobs = [j for j in jobs if j.id % args.every == 0]
    nodes = [(f"n{i:03d}", int(n)) for i, n in enumerate(args.nodes.split(","))]
    common = json.loads(args.common)
    chosen = {"strict FIFO", "backfill", *(args.sets.split(",") if args.sets else SETS)}
    if chosen - set(SETS):
        parser.error(f"--sets: unknown {', '.join(sorted(chosen - set(SETS)))}; known: {', '.join(SETS)}")
    sets = {name: c for name, c in SETS.items() if name in chosen}
    started = time.perf_counter()
    figures = simulator.compare(
        jobs,
        {name: simulations.setup_for({**c, **common}) for name, c in sets.items()},
        nodes,
        epoch=epoch or simulator.EPOCH,
    )
    took = time.perf_counter() - started
    skipped = figures["strict FIFO"]["unplaceable"]
    print(
        f"{args.trace.name}: {len(jobs)} jobs ({skipped} need more GPUs than one node and are left out) "
        f"on {len(nodes)} nodes, {sum(n for _, n in nodes)} GPUs\n"
    )
    print(simulations.format_table(simulations.comparison_rows(figures)))
    classes = [
        name for name, _, _ in simulator.CLASSES if figures["strict FIFO"]["wait_by_gpus"][name]["jobs"]
    ]
    print("\nmean wait per GPU-count class as a ratio: vs strict FIFO | vs plain backfill")
    print(f"{'policy set':<26}" + "".join(f"{'GPUs ' + c:>22}" for c in ["all", *classes]))
    for name, f in figures.items():
        cells = []
        for c in ["all", *classes]:
            mine = f["wait"]["mean"] if c == "all" else f["wait_by_gpus"][c]["mean"]
            ratios = []
            for base in ("strict FIFO", "backfill"):
                b = figures[base]["wait"]["mean"] if c == "all" else figures[base]["wait_by_gpus"][c]["mean"]
                ratios.append(f"{mine / b:.2f}x" if b else "-")
            cells.append(" | ".join(ratios))
        print(f"{name:<26}" + "".join(f"{cell:>22}" for cell in cells))
    print(f"\n{len(sets)} replays of {len(jobs)} jobs in {took:.1f} s ({took / len(sets):.1f} s each)")


if __name__ == "__main__":
    sys.exit(main())
