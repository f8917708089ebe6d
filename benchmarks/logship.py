"""Cost of logs in the database: shipping a job's output (a large log at once, and one line a heartbeat)
and reading it back (the tail, a follow read), against reading the same tail from the file as the API did
when logs lived on a shared folder (the baseline, in the same run).

Uses a fresh SQLite database in a temporary folder, or the PostgreSQL database given with --database-url
(migrated and used for one job that is deleted at the end: give it an empty one).

    .venv/bin/python benchmarks/logship.py [--megabytes 16] [--database-url URL]
"""

import argparse
import os
import time
from pathlib import Path

from _common import migrated_user, setup_django  # benchmarks/ is on sys.path when run as a script


def timed(function, repeat: int) -> float:
    """Mean milliseconds of `function()` over `repeat` calls."""
    start = time.perf_counter()
    for _ in range(repeat):
        function()
    return (time.perf_counter() - start) / repeat * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=int, default=16)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    data = setup_django("gpuq-logship-", args.database_url)
    from scheduling import logs
    from scheduling.logship import LogShipper
    from scheduling.models import Job, LogChunk

    user = migrated_user("logship")
    job = Job.objects.create(owner=user, argv=["true"])
    path = Path(data) / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    line = b"x" * 99 + b"\n"
    try:
        with open(path, "ab") as handle:
            handle.write(line * (args.megabytes * 10_000))
        start = time.perf_counter()
        shipper.flush()
        took = time.perf_counter() - start
        chunks = LogChunk.objects.filter(job=job).count()
        print(
            f"ship {args.megabytes} MB at once: {took:.2f} s ({args.megabytes / took:.0f} MB/s), {chunks} chunks"
        )

        def one_line():
            with open(path, "ab") as handle:
                handle.write(line)
            shipper.ship()

        print(f"ship one line (a heartbeat of a quiet job): {timed(one_line, 200):.2f} ms")
        print(f"tail, 100 lines, from the database: {timed(lambda: logs.tail(job.pk, 100), 50):.2f} ms")
        print(f"  baseline, the same tail from the file: {timed(lambda: file_tail(path, 100), 50):.2f} ms")
        middle = path.stat().st_size // 2
        print(
            f"follow read of 1 MiB from the middle: {timed(lambda: logs.read_from(job.pk, middle), 50):.2f} ms"
        )
    finally:
        job.delete()
        user.delete()


def file_tail(path: Path, lines: int) -> list[str]:
    """The file tail the API used to read (64 KiB blocks from the end)."""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        position, data = handle.tell(), b""
        while position > 0 and data.count(b"\n") <= lines:
            step = min(64 * 1024, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    return data.decode(errors="replace").splitlines()[-lines:]


if __name__ == "__main__":
    main()
