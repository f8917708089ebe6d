"""The archive of removed jobs' histories: gzipped JSON Lines under GPUQ_ARCHIVE_DIR, one file a month.

Each append is one whole gzip member written with one locked, synced write, so two cleanups appending at
once never interleave and a crash leaves at most a torn last member; `gzip.open` reads the members of a
file as one stream. Lines are written before their rows are deleted (in the deleting transaction): if
that transaction then fails, the next run archives the same rows again, so a line may repeat (read by
job, `at` and `to`), but none is lost."""

import fcntl
import gzip
import json
import os
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path

from django.conf import settings


def path_for(now: datetime) -> Path:
    return settings.GPUQ_ARCHIVE_DIR / f"transitions-{now:%Y-%m}.jsonl.gz"


def append(lines: Iterable[dict], *, now: datetime) -> Path:
    """Append `lines` (JSON objects) to this month's archive file; returns its path."""
    path = path_for(now)
    body = "".join(json.dumps(line, sort_keys=True, default=str) + "\n" for line in lines).encode()
    if not body:
        return path
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    member = memoryview(gzip.compress(body))
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        while member:
            member = member[os.write(fd, member) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return path


def read(path: Path) -> Iterator[dict]:
    """Every line of an archive file, oldest first."""
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line in lines:
            yield json.loads(line)
