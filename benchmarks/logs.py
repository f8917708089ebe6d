"""Reading a huge stored log: the viewer's first view (the window at the end), the tail by lines, an
earlier window, a search page and the streamed download, on a log of --size MB (1 GB by default) stored
as LogChunk rows; against, in the same run, the old ways: the old page read the log from byte 0 in 1 MiB
follow reads to show its end, and the old tail by lines was quadratic on a line without newlines.

Uses a fresh SQLite database in a temporary folder, or the PostgreSQL database given with --database-url
(migrated and used for one job that is deleted at the end: give it an empty one).

    .venv/bin/python benchmarks/logs.py [--size 1024] [--line-size 8] [--database-url URL]
"""

import argparse
import shutil
import time

from _common import migrated_user, percentile, setup_django  # benchmarks/ is on sys.path when run as a script

MIB = 1024 * 1024


def timings(function, repeat: int) -> list[float]:
    """Milliseconds of each of `repeat` calls of `function()`."""
    took = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        took.append((time.perf_counter() - start) * 1000)
    return took


def show(label: str, took: list[float]) -> float:
    p50 = percentile(took, 50)
    print(f"  {label}: p50 {p50:.1f} ms, max {max(took):.1f} ms ({len(took)} reads)")
    return p50


def store(job, size: int, line: bytes) -> float:
    """Store `size` bytes of `line` repeated as whole chunks, in bulk; the seconds it took."""
    from scheduling import logs
    from scheduling.models import LogChunk

    chunk = (line * (logs.CHUNK_BYTES // len(line) + 1))[: logs.CHUNK_BYTES]
    start, offset = time.perf_counter(), 0
    while offset < size:
        rows = []
        for _ in range(256):  # 16 MiB a statement
            if offset >= size:
                break
            data = chunk[: min(len(chunk), size - offset)]
            rows.append(LogChunk(job=job, attempt=1, offset=offset, size=len(data), data=data))
            offset += len(data)
        LogChunk.objects.bulk_create(rows)
    return time.perf_counter() - start


def old_tail(job_id: int, lines: int) -> list[str]:
    """The tail by lines before this change (prepending each chunk and counting all newlines again)."""
    from scheduling.models import LogChunk

    data, before = b"", None
    while data.count(b"\n") <= lines:
        query = LogChunk.objects.filter(job_id=job_id)
        if before is not None:
            query = query.filter(offset__lt=before)
        batch = list(query.order_by("-offset").values_list("offset", "data")[:4])
        for _, chunk in batch:
            data = bytes(chunk) + data
        if len(batch) < 4:
            break
        before = batch[-1][0]
    return data.decode("utf-8", errors="replace").splitlines()[-lines:]


def old_page_end(job_id: int) -> int:
    """What the old job page did to show a log's end: follow reads of 1 MiB from byte 0 until the end."""
    from scheduling import logs

    offset, reads = 0, 0
    while True:
        _, _, offset, end = logs.read_from(job_id, offset, final=True)
        reads += 1
        if offset >= end:
            return reads


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1024, help="MB of the big log (default 1024)")
    parser.add_argument("--line-size", type=int, default=8, help="MB of the log of one line (default 8)")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default="")
    return parser.parse_args()


def main():
    args = arguments()
    data = setup_django("gpuq-logs-", args.database_url)
    from django.db import connection

    from scheduling import logs, logsearch
    from scheduling.models import Job

    user = migrated_user("logs-bench")
    big = Job.objects.create(owner=user, argv=["true"])
    line_job = Job.objects.create(owner=user, argv=["true"])
    print(f"database: {connection.vendor}")
    try:
        took = store(big, args.size * MIB, b"step 123456 loss 0.123456 lr 0.0001 grad 1.234 tokens/s 98765\n")
        print(f"stored a {args.size} MB log in {took:.1f} s ({args.size / took:.0f} MB/s, bulk insert)")
        size = logs.size(big.pk)
        print(f"log of {size / MIB:.0f} MiB, {args.repeat} reads each:")
        window = show(
            "the viewer's first view, the last 64 KiB", timings(lambda: logs.window(big.pk), args.repeat)
        )
        show("tail, 100 lines", timings(lambda: logs.tail(big.pk, 100), args.repeat))
        show(
            "an earlier 64 KiB from the middle", timings(lambda: logs.window(big.pk, size // 2), args.repeat)
        )
        show(
            f"a search page (scans {logsearch.SCAN_BYTES // MIB} MiB, no match)",
            timings(lambda: logsearch.search(big.pk, "no such text", start=size // 2), 3),
        )
        start = time.perf_counter()
        streamed = sum(len(part) for part in logs.stream(big.pk))
        took = time.perf_counter() - start
        print(f"  download (streamed, 1 MiB at a time): {streamed / MIB:.0f} MiB in {took:.1f} s")
        start = time.perf_counter()
        reads = old_page_end(big.pk)
        baseline = (time.perf_counter() - start) * 1000
        print(f"  baseline, the old page's way to the end: {reads} follow reads of 1 MiB, {baseline:.0f} ms")
        print(f"  ratio: the end shows {baseline / window:.0f}x sooner (target: < 200 ms at 1 GB)")

        store(line_job, args.line_size * MIB, b"x")
        print(f"a log of one {args.line_size} MiB line with no newline:")
        new = show("tail, 100 lines", timings(lambda: logs.tail(line_job.pk, 100), 3))
        old = show("baseline, the old tail", timings(lambda: old_tail(line_job.pk, 100), 1))
        print(f"  ratio: {old / new:.0f}x")
    finally:
        big.delete()
        line_job.delete()
        user.delete()
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
