"""A job's charts (scheduling.timeseries): what one progress report costs the executor's heartbeat
(queries and time, thinning included), how many rows a long run keeps, and what the metrics API's read of
a full attempt costs (--series series of GPUQ_JOB_METRICS_MAX_POINTS points each).

Uses a fresh SQLite database in a temporary folder, or the PostgreSQL database given with --database-url
(migrated and used for one job that is deleted at the end: give it an empty one).

    .venv/bin/python benchmarks/charts.py [--reports 5000] [--series 5] [--database-url URL]
"""

import argparse
import shutil
import time
from datetime import UTC, datetime, timedelta

from _common import migrated_user, percentile, setup_django  # benchmarks/ is on sys.path when run as a script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reports", type=int, default=5000, help="progress reports of the one job")
    parser.add_argument("--series", type=int, default=5, help="numbers in each report")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    data = setup_django("gpuq-bench-charts-", args.database_url)
    from django.conf import settings
    from django.db import connection, transaction

    from scheduling import timeseries
    from scheduling.models import Job, MetricPoint

    owner = migrated_user("charts")
    job = Job.objects.create(owner=owner, status="running", gpu_count=1, priority=10, argv=["true"])
    try:
        t0, known, took, queries = datetime(2026, 1, 1, tzinfo=UTC), set(), [], []
        for i in range(args.reports):
            progress = {f"m{k}": i / (k + 1) for k in range(args.series)}
            start = time.perf_counter()
            seen: list[str] = []

            def counted(run, sql, *rest, seen=seen):
                seen.append(sql)
                return run(sql, *rest)

            with connection.execute_wrapper(counted):
                with transaction.atomic():
                    timeseries.record_progress(
                        job_id=job.pk, attempt=1, progress=progress, at=t0 + timedelta(seconds=i), known=known
                    )
            took.append((time.perf_counter() - start) * 1000)
            queries.append(len(seen))
        rows = MetricPoint.objects.filter(job=job).count()
        plain = [t for t, q in zip(took, queries, strict=True) if q <= 4]
        print(
            f"{connection.vendor}: {args.reports} reports of {args.series} numbers, max {settings.GPUQ_JOB_METRICS_MAX_POINTS} points a series"
        )
        print(
            f"  a report: p50 {percentile(plain, 50):.2f} ms, p99 {percentile(took, 99):.2f} ms, max {max(took):.1f} ms"
        )
        print(
            f"  queries a report: {min(queries)} usually (bulk insert + count, and the transaction), at most {max(queries)} (thinning); thinned in {sum(q > 4 for q in queries)} of {args.reports}"
        )
        print(f"  rows kept: {rows} (of {args.reports * args.series} points reported)")
        reads = []
        for _ in range(20):
            start = time.perf_counter()
            found, _last = timeseries.read(job_id=job.pk, attempt=1)
            reads.append((time.perf_counter() - start) * 1000)
        print(
            f"  reading the whole attempt ({sum(len(s.points) for s in found)} points): p50 {percentile(reads, 50):.1f} ms"
        )
    finally:
        MetricPoint.objects.filter(job=job).delete()
        job.delete()
        if not args.database_url:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
