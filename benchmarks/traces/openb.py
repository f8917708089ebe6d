"""Convert Alibaba's public GPU-cluster trace cluster-trace-gpu-v2023 ("openb") into gpuq's trace CSV.

The trace (github.com/alibaba/clusterdata, cluster-trace-gpu-v2023/csv; Weng et al., "Beware of
Fragmentation", USENIX ATC'23) has no licence that allows passing it on, so only this converter is in the
repository: fetch the two files yourself, then

    .venv/bin/python benchmarks/traces/openb.py openb_pod_list_default.csv [--start-day 110] \\
        [--fractional whole|drop] [--time-limit S] [--nodes openb_node_list_gpu_node.csv] [--scale 100] > openb.csv

writes the trace CSV (submit_time, gpus, runtime, user) on stdout and, on stderr, what the rules of
scheduling.traces.from_openb left out or changed, and (with --nodes) the cluster's shape as a `--nodes`
value for benchmarks/simulate.py: every node with GPUs, or one node in `--scale` of each size (the trace's
pods fill a tiny part of its 6,212 GPUs; see README.md beside this file).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from scheduling.traces import from_openb, openb_node_shape, to_csv  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pods", type=Path, help="openb_pod_list_default.csv")
    parser.add_argument("--start-day", type=float, default=0.0, help="count time from this day of the trace")
    parser.add_argument("--fractional", choices=("whole", "drop"), default="whole")
    parser.add_argument(
        "--time-limit",
        type=float,
        help="seconds: every job's limit, as gpuq's default gives (none by default)",
    )
    parser.add_argument("--nodes", type=Path, help="openb_node_list_gpu_node.csv: print the cluster's shape")
    parser.add_argument("--scale", type=int, default=1, help="with --nodes: one node in K of each size")
    args = parser.parse_args()
    jobs, counts = from_openb(
        args.pods.read_text(),
        start=args.start_day * 86400,
        fractional=args.fractional,
        time_limit=args.time_limit,
    )
    sys.stdout.write(to_csv(jobs))
    gpu_hours = sum(j.gpus * j.runtime for j in jobs) / 3600
    print(f"{len(jobs)} jobs, {gpu_hours:,.0f} GPU-hours; {dict(sorted(counts.items()))}", file=sys.stderr)
    if args.nodes:
        shape = openb_node_shape(args.nodes.read_text(), scale=args.scale)
        print(f"{len(shape)} nodes, {sum(shape)} GPUs: --nodes {','.join(map(str, shape))}", file=sys.stderr)


if __name__ == "__main__":
    main()
