"""Retention of finished jobs: those finished before a cutoff are archived (their transition log and
audit, scheduling.archive) and removed with everything that belongs to them (log chunks, chart points, events,
attempts, allocations, shares, idempotency keys, and their log file, working and checkpoint folders).

Work goes in batches of GPUQ_RETENTION_BATCH jobs, each in its own short transaction, so memory stays
bounded and no lock is held longer than one batch: on SQLite each batch holds the write lock briefly,
as a tick's transaction does; on PostgreSQL cleanup never takes the tick's advisory lock (finished jobs
are nothing the planner reads, except as dependencies, and those are kept). Nothing active is touched:
only jobs in a terminal status (which has no way out) are chosen, and a finished job that an unfinished
one depends on stays until that one finishes too."""

import logging
import os
import shutil
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.db.models import Q, QuerySet

from gpus.models import Allocation
from scheduling import archive
from scheduling.models import (
    Attempt,
    Event,
    IdempotencyKey,
    Job,
    JobAudit,
    JobStateTransition,
    LogChunk,
    MetricPoint,
)
from scheduling.states import TERMINAL, Status

log = logging.getLogger("gpuq.retention")

UNFINISHED = [s for s in Status if s not in TERMINAL]


@dataclass
class Removed:
    """What one cleanup removed (the API's answer)."""

    jobs: int = 0
    transitions: int = 0
    audits: int = 0
    log_chunks: int = 0
    metric_points: int = 0
    events: int = 0
    attempts: int = 0
    allocations: int = 0
    files: int = 0
    archive: str = ""

    def add(self, other: "Removed") -> None:
        for field in fields(self):
            mine = getattr(self, field.name)
            if isinstance(mine, int):
                setattr(self, field.name, mine + getattr(other, field.name))
        self.archive = other.archive or self.archive

    def as_dict(self) -> dict:
        return asdict(self)


def removable(*, finished_before: datetime, owner=None) -> QuerySet:
    """Finished jobs older than the cutoff (by their end, else their last change), that no unfinished
    job depends on; only `owner`'s when given."""
    old = Q(finished_at__lt=finished_before) | Q(finished_at__isnull=True, updated_at__lt=finished_before)
    jobs = Job.objects.filter(old, status__in=TERMINAL)
    if owner is not None:
        jobs = jobs.filter(owner=owner)
    return jobs.exclude(dependents__status__in=UNFINISHED)


def jobs_cleanup(
    *, finished_before: datetime, now: datetime, owner=None, ids: list[int] | None = None
) -> Removed:
    """Archive and remove the removable jobs (only those of `ids` when given), a batch at a time."""
    chosen = removable(finished_before=finished_before, owner=owner)
    if ids is not None:
        chosen = chosen.filter(pk__in=ids)
    removed, after = Removed(), 0
    while True:
        batch = list(
            chosen.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[: settings.GPUQ_RETENTION_BATCH]
        )
        if not batch:
            break
        after = batch[-1]
        removed.add(_remove_batch(chosen, batch, now=now))
    if removed.jobs:
        log.info("retention: removed %d finished job(s), archived in %s", removed.jobs, removed.archive)
    return removed


def _remove_batch(chosen: QuerySet, batch: list[int], *, now: datetime) -> Removed:
    # Archived before the transaction (a finished job's history no longer changes), so that the
    # transaction, which holds SQLite's write lock, does nothing but delete.
    path = archive.append(_history(batch), now=now)
    with transaction.atomic():
        # Asked again inside the transaction: a job may have gained an unfinished dependent meanwhile
        # (then it stays, and a later run archives its history again).
        ids = list(chosen.filter(pk__in=batch).values_list("pk", flat=True))
        if not ids:
            return Removed()
        removed = Removed(
            log_chunks=_delete(LogChunk.objects.filter(job_id__in=ids)),
            metric_points=_delete(MetricPoint.objects.filter(job_id__in=ids)),
            events=_delete(Event.objects.filter(job_id__in=ids)),
            attempts=_delete(Attempt.objects.filter(job_id__in=ids)),
            allocations=_delete(Allocation.objects.filter(job_id__in=ids)),
            transitions=_delete(JobStateTransition.objects.filter(job_id__in=ids)),
            audits=_delete(JobAudit.objects.filter(job_id__in=ids)),
            archive=str(path),
        )
        IdempotencyKey.objects.filter(job_id__in=ids).delete()
        Job.objects.filter(batch_leader_id__in=ids).update(batch_leader=None)
        removed.jobs = Job.objects.filter(pk__in=ids).only("pk").delete()[1].get(Job._meta.label, 0)
    # After the rows: a folder removed for a job whose rows stayed would be worse than the reverse.
    removed.files = sum(_remove_files(pk) for pk in ids)
    return removed


def _delete(rows: QuerySet) -> int:
    return rows.delete()[0]


def _history(ids: list[int]):
    """The archive lines of these jobs: each transition and audit entry, with the job's owner and name."""
    jobs = {
        row["pk"]: row
        for row in Job.objects.filter(pk__in=ids).values("pk", "owner__username", "name", "status")
    }

    def about(job_id: int) -> dict:
        job = jobs[job_id]
        return {"job": job_id, "owner": job["owner__username"], "name": job["name"], "final": job["status"]}

    transitions = JobStateTransition.objects.filter(job_id__in=ids).order_by("id")
    for t in transitions.values(
        "job_id", "from_status", "to_status", "attempt", "at", "triggered_by__username", "reason"
    ).iterator(chunk_size=2000):
        yield {
            **about(t["job_id"]),
            "kind": "transition",
            "from": t["from_status"],
            "to": t["to_status"],
            "attempt": t["attempt"],
            "at": t["at"].isoformat(),
            "by": t["triggered_by__username"],
            "reason": t["reason"],
        }
    audits = JobAudit.objects.filter(job_id__in=ids).order_by("id")
    for a in audits.values("job_id", "at", "by__username", "action", "detail").iterator(chunk_size=2000):
        yield {
            **about(a["job_id"]),
            "kind": "audit",
            "at": a["at"].isoformat(),
            "by": a["by__username"],
            "action": a["action"],
            "detail": a["detail"],
        }


def _remove_files(job_id: int) -> int:
    """Remove the job's log file and its working and checkpoint folders where this machine has them;
    returns how many were there. Never follows a link (a job may have left one in its folder)."""
    return sum(
        _remove_quietly(path, job_id)
        for path in (
            settings.GPUQ_LOG_DIR / f"job-{job_id}.log",
            settings.GPUQ_JOBS_DIR / str(job_id),
            settings.GPUQ_CHECKPOINT_ROOT / str(job_id),
        )
    )


def _remove(path: Path) -> int:
    if path.is_symlink() or path.is_file():
        path.unlink()
        return 1
    if path.is_dir():
        shutil.rmtree(path)
        return 1
    return 0


def orphan_files_sweep() -> int:
    """Remove this machine's log files and working and checkpoint folders of jobs that no longer exist
    (removed by a cleanup that ran on another machine); returns how many. Only ids below the highest
    job id are judged (ids are never reused), so a folder made for a job whose row this process cannot
    see yet is left alone."""
    found: dict[int, list[Path]] = {}
    for root in (settings.GPUQ_JOBS_DIR, settings.GPUQ_CHECKPOINT_ROOT):
        for name in _names(root):
            if name.isascii() and name.isdigit():
                found.setdefault(int(name), []).append(root / name)
    for name in _names(settings.GPUQ_LOG_DIR):
        number = name.removeprefix("job-").removesuffix(".log").split(".rank")[0]  # gang: job-N.rankR.log
        if name.startswith("job-") and name.endswith(".log") and number.isascii() and number.isdigit():
            found.setdefault(int(number), []).append(settings.GPUQ_LOG_DIR / name)
    highest = Job.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    ids = sorted(pk for pk in found if pk < highest)
    removed = 0
    for start in range(0, len(ids), settings.GPUQ_RETENTION_BATCH):
        chunk = ids[start : start + settings.GPUQ_RETENTION_BATCH]
        alive = set(Job.objects.filter(pk__in=chunk).values_list("pk", flat=True))
        for pk in chunk:
            if pk not in alive:
                removed += sum(_remove_quietly(path, pk) for path in found[pk])
    if removed:
        log.info("retention: removed %d file(s) and folder(s) of jobs that no longer exist", removed)
    return removed


def _names(root: Path) -> list[str]:
    try:
        return os.listdir(root)
    except FileNotFoundError:
        return []


def _remove_quietly(path: Path, job_id: int) -> int:
    try:
        return _remove(path)
    except OSError as error:
        log.warning("retention: job %s: could not remove %s: %s", job_id, path, error)
        return 0
