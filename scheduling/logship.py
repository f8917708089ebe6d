"""Ship a job's output to the database as it is written, so the API and pages show every node's logs
with no shared folder.

The executor's monitor loop calls `ship()` right after each heartbeat: it copies what the job's log file
gained to `LogChunk` rows, at most SHIP_BYTES a call so that a backlog never delays the next heartbeat
much, and the executor calls `flush()` before it records the outcome, so a reader who sees the job
finished has its whole log. The job writes to its file and never waits for the database. The file is the
buffer: what is written during a database outage is shipped when the database is back. Chunks hold at
most CHUNK_BYTES; the last one grows until full. A job's stored log is one byte stream across attempts:
an attempt appends at the stream's end, and the unique (job, offset) lets one writer claim a position,
so a stale attempt that writes late is refused and ships no more. Only the last GPUQ_LOG_DB_MAX_BYTES
of each job are kept.
"""

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists

from scheduling import logs
from scheduling.models import LogChunk

log = logging.getLogger("gpuq.logship")

CHUNK_BYTES = logs.CHUNK_BYTES
SHIP_BYTES = 1024 * 1024


@dataclass
class _Stream:
    """Where this attempt writes in one job's stored log."""

    job_id: int
    position: int  # the next byte of the file to ship
    end: int | None = None  # the next offset to write at; None until the first write
    open_offset: int | None = None  # the last chunk written, while it can still grow
    open_data: bytes = b""
    refused: bool = False  # another writer holds the position: this attempt ships no more


class LogShipper:
    """Copies `path` from its present end on, for each of `job_ids` (a batch's jobs share one file)."""

    def __init__(self, path: Path, job_ids: list[int], attempt: int):
        self.path = Path(path)
        try:
            start = self.path.stat().st_size  # earlier attempts on this node shipped what came before
        except OSError:
            start = 0
        self.attempt = attempt
        self.streams = [_Stream(job_id, start) for job_id in job_ids]
        # Opened now (made if need be) and kept: the log is read even if its folder is moved or deleted.
        self.fd: int | None = os.open(self.path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def close(self) -> None:
        """Stop reading the file (after the last flush)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def flush(self) -> None:
        """Ship everything written so far (raises DatabaseError while the database is away)."""
        self.ship(limit=None)

    def ship(self, limit: int | None = SHIP_BYTES) -> None:
        """Ship what the file gained (up to `limit` bytes per job), a chunk at a time. A DatabaseError
        leaves the rest in the file for the next call."""
        for stream in self.streams:
            shipped = 0
            while not stream.refused and (limit is None or shipped < limit):
                if self.fd is None:
                    return  # closed
                data = os.pread(self.fd, CHUNK_BYTES - len(stream.open_data) or CHUNK_BYTES, stream.position)
                if not data:
                    break
                try:
                    self._store(stream, data)
                except IntegrityError:  # a foreign key checked at commit: the job was deleted
                    self._refuse(stream, "the job is gone")
                stream.position += len(data)
                shipped += len(data)

    def _store(self, stream: _Stream, data: bytes) -> None:
        """Append `data` to one job's stored log: grow the open chunk while it fits, else a new chunk.
        The stream's state changes only once the transaction has committed; a commit whose answer was lost
        (the database dropped) is recognised on the next try as our own write, so no byte is stored twice."""
        with transaction.atomic():
            if stream.open_offset is not None and len(stream.open_data) + len(data) <= CHUNK_BYTES:
                start, chunk = stream.open_offset, stream.open_data + data
                later = LogChunk.objects.filter(job_id=stream.job_id, offset__gt=start)
                grown = LogChunk.objects.filter(
                    ~Exists(later), job_id=stream.job_id, offset=start, size=len(stream.open_data)
                ).update(data=chunk, size=len(chunk))
                if not grown and not self._ours(stream.job_id, start, chunk):
                    return self._refuse(stream, "another attempt wrote after it, or the job is gone")
            else:
                start, chunk = self._append(stream, data), data
                if start is None:
                    return None
            self._trim(stream.job_id, start + len(chunk))
        stream.open_offset, stream.open_data, stream.end = start, chunk, start + len(chunk)

    def _append(self, stream: _Stream, data: bytes) -> int | None:
        """Write `data` as a new chunk at the stream's end; its offset, or None when another writer holds
        this log. The first chunk of an attempt goes at the stored log's end, and may meet another's
        there once (it tries again at the end as it is then); after that, a position already taken by a
        chunk that is not our own means another attempt writes this job's log."""
        for again in (False, True):
            if stream.end is None or (again and stream.open_offset is None):
                stream.end = logs.size(stream.job_id)  # the planned position, kept for a retried write
            start = stream.end
            try:
                with transaction.atomic():
                    LogChunk.objects.create(
                        job_id=stream.job_id, attempt=self.attempt, offset=start, size=len(data), data=data
                    )
                return start
            except IntegrityError:
                if self._ours(stream.job_id, start, data):
                    return start
                if stream.open_offset is not None:
                    break
        self._refuse(stream, "another attempt writes this job's log")
        return None

    def _ours(self, job_id: int, offset: int, data: bytes) -> bool:
        """Whether the chunk at `offset` is this attempt's, holding `data`: a write that committed though
        its answer was lost."""
        row = (
            LogChunk.objects.filter(job_id=job_id, offset=offset, attempt=self.attempt).values("data").first()
        )
        return row is not None and bytes(row["data"]) == data

    def _trim(self, job_id: int, end: int) -> None:
        """Keep the whole chunks within the last GPUQ_LOG_DB_MAX_BYTES of the job's stored log (never the
        chunk being written: the setting is at least one chunk)."""
        keep_from = end - settings.GPUQ_LOG_DB_MAX_BYTES
        if keep_from > 0:
            LogChunk.objects.filter(job_id=job_id, offset__lt=keep_from).delete()

    def _refuse(self, stream: _Stream, why: str) -> None:
        log.warning("job %s: attempt %s ships no more log: %s", stream.job_id, self.attempt, why)
        stream.refused = True
