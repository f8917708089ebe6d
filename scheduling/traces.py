"""Where the simulator's jobs come from: a trace file (CSV), a public trace's pod list (Alibaba's openb,
converted by `from_openb`), or gpuq's own history of finished jobs.

A trace CSV has a header row naming its columns: `submit_time` (seconds from the trace's start, or an ISO
8601 time), `gpus`, `runtime` (seconds), `user`, and optionally `time_limit` (seconds, empty for none),
`priority` (integer, default 10) and `team`. Every error names the row and the column.
"""

import csv
import io
import math
from collections import Counter
from datetime import datetime, timedelta

from scheduling.simulator import TraceJob

REQUIRED = ("submit_time", "gpus", "runtime", "user")
OPTIONAL = ("time_limit", "priority", "team")
MAX_GPUS = 10_000
MAX_SECONDS = 366 * 86400.0


class TraceError(ValueError):
    """A trace that cannot be read; the message names the row and column."""


def _number(text: str, where: str, *, low: float, high: float, integer: bool = False) -> float:
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        raise TraceError(f"{where}: {text!r} is not {'an integer' if integer else 'a number'}") from None
    if not math.isfinite(value) or not low <= value <= high:
        raise TraceError(f"{where}: {text} is outside {low:g}..{high:g}")
    return value


def parse_csv(text: str, *, max_jobs: int) -> tuple[list[TraceJob], datetime | None]:
    """The jobs of a trace CSV, and the time of its first submission when times are ISO 8601 (else None:
    offsets in seconds). Raises TraceError."""
    reader = csv.DictReader(io.StringIO(text))
    columns = reader.fieldnames or []
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise TraceError(f"header: missing column(s) {', '.join(missing)}; it needs {', '.join(REQUIRED)}")
    unknown = [c for c in columns if c not in REQUIRED + OPTIONAL]
    if unknown:
        raise TraceError(
            f"header: unknown column(s) {', '.join(unknown)}; known: {', '.join(REQUIRED + OPTIONAL)}"
        )
    rows, stamps = [], []
    for line, row in enumerate(reader, start=2):
        if len(rows) >= max_jobs:
            raise TraceError(f"row {line}: more than {max_jobs} jobs")
        if None in row or any(row[c] is None for c in columns):
            raise TraceError(f"row {line}: expected {len(columns)} fields")
        submit = row["submit_time"].strip()
        try:
            stamps.append(datetime.fromisoformat(submit) if not _is_number(submit) else None)
        except ValueError:
            raise TraceError(f"row {line}, submit_time: {submit!r} is neither seconds nor ISO 8601") from None
        rows.append((line, row))
    if any(s is not None for s in stamps) and any(s is None for s in stamps):
        raise TraceError("submit_time: use seconds or ISO 8601 times, not both")
    epoch = None
    if stamps and stamps[0] is not None:
        if any(s.tzinfo is None for s in stamps):
            raise TraceError("submit_time: ISO 8601 times need a time zone (e.g. 2026-01-01T00:00:00Z)")
        epoch = min(stamps)
    jobs = []
    for i, ((line, row), stamp) in enumerate(zip(rows, stamps, strict=True), start=1):
        at = f"row {line}"
        submit = (
            (stamp - epoch).total_seconds()
            if stamp is not None
            else _number(row["submit_time"], f"{at}, submit_time", low=0, high=MAX_SECONDS)
        )
        user = row["user"].strip()
        if not user or len(user) > 150:
            raise TraceError(f"{at}, user: 1 to 150 characters")
        limit = (row.get("time_limit") or "").strip()
        priority = (row.get("priority") or "").strip()
        team = (row.get("team") or "").strip()
        jobs.append(
            TraceJob(
                id=i,
                submit=submit,
                gpus=int(_number(row["gpus"], f"{at}, gpus", low=1, high=MAX_GPUS, integer=True)),
                runtime=_number(row["runtime"], f"{at}, runtime", low=0, high=MAX_SECONDS),
                user=user,
                team=team[:150] or None,
                priority=int(_number(priority, f"{at}, priority", low=-1000, high=1000, integer=True))
                if priority
                else 10,
                time_limit=_number(limit, f"{at}, time_limit", low=1, high=MAX_SECONDS) if limit else None,
            )
        )
    return jobs, epoch


OPENB_COLUMNS = ("num_gpu", "gpu_milli", "qos", "creation_time", "deletion_time", "scheduled_time")


def from_openb(
    text: str, *, start: float = 0.0, fractional: str = "whole", time_limit: float | None = None
) -> tuple[list[TraceJob], Counter[str]]:
    """The jobs of an Alibaba cluster-trace-gpu-v2023 ("openb") pod list (Weng et al., ATC'23), and how
    many pods each rule below left out or changed. Raises TraceError naming the row and column.

    A pod is submitted at `creation_time` and runs from `scheduled_time` to `deletion_time` (seconds).
    Left out: pods without GPUs (`no_gpu`: gpuq queues GPU jobs), pods never scheduled (`never_started`:
    they ran for no time we know), pods without a deletion time (`no_end`), pods gone before `start`
    (`before_start`). A pod sharing a GPU (one GPU, `gpu_milli` < 1000) takes one whole GPU, as gpuq
    gives whole GPUs (`fractional_whole`), or is left out with `fractional="drop"` (`fractional_dropped`).
    Pods still running when the trace was cut (the latest deletion time) run until then (`cut_at_end`).
    Times count from `start`: a pod created before it and still there enters at 0 with the run time it has
    left (`carried_over`). The trace names no users: each pod's QoS class (LS, BE, Burstable,
    Guaranteed; `unknown` when empty) stands as its user, so per-user figures and Jain's index are per QoS class; no team,
    priority 10. The trace has no time limits: every job gets `time_limit` (None: none), as gpuq gives a
    job submitted without one its default (GPUQ_DEFAULT_TIME_LIMIT_SECONDS); the simulator ends a job
    there, so pods that ran longer count in `over_limit`."""
    if fractional not in ("whole", "drop"):
        raise ValueError(f"fractional: 'whole' or 'drop', not {fractional!r}")
    reader = csv.DictReader(io.StringIO(text))
    missing = [c for c in OPENB_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        raise TraceError(f"header: missing column(s) {', '.join(missing)}; an openb pod list has them")
    rows = []
    for line, row in enumerate(reader, start=2):
        if None in row or any(row[c] is None for c in OPENB_COLUMNS):
            raise TraceError(f"row {line}: expected {len(reader.fieldnames or [])} fields")
        rows.append((line, row))

    def seconds(line: int, row: dict, column: str) -> float | None:
        value = row[column].strip()
        return _number(value, f"row {line}, {column}", low=0, high=10 * MAX_SECONDS) if value else None

    cut = max((seconds(line, row, "deletion_time") or 0.0 for line, row in rows), default=0.0)
    counts: Counter[str] = Counter()
    kept = []
    for line, row in rows:
        gpus = int(_number(row["num_gpu"], f"row {line}, num_gpu", low=0, high=MAX_GPUS, integer=True))
        milli = row["gpu_milli"].strip()
        share = _number(milli, f"row {line}, gpu_milli", low=0, high=1000, integer=True) if milli else 1000
        created = seconds(line, row, "creation_time")
        scheduled, deleted = seconds(line, row, "scheduled_time"), seconds(line, row, "deletion_time")
        if created is None:
            raise TraceError(f"row {line}, creation_time: missing")
        if gpus < 1:
            counts["no_gpu"] += 1
            continue
        if scheduled is None:
            counts["never_started"] += 1
            continue
        if deleted is None:
            counts["no_end"] += 1
            continue
        if deleted <= start:
            counts["before_start"] += 1
            continue
        if gpus == 1 and share < 1000:
            if fractional == "drop":
                counts["fractional_dropped"] += 1
                continue
            counts["fractional_whole"] += 1
        if created < start:
            counts["carried_over"] += 1
        if deleted >= cut:
            counts["cut_at_end"] += 1
        submit = max(created, start) - start
        runtime = max(0.0, deleted - max(scheduled, start))
        if time_limit is not None and runtime > time_limit:
            counts["over_limit"] += 1
        kept.append((submit, line, gpus, runtime, row["qos"].strip() or "unknown"))
    kept.sort()
    jobs = [
        TraceJob(id=i, submit=submit, gpus=gpus, runtime=runtime, user=user, time_limit=time_limit)
        for i, (submit, _, gpus, runtime, user) in enumerate(kept, start=1)
    ]
    return jobs, counts


def openb_node_shape(text: str, *, scale: int = 1) -> list[int]:
    """GPUs per node of an openb node list (`gpu` column), nodes without GPUs left out, largest first;
    with scale K, one node in K of each size (rounded, at least one of each size), so a smaller cluster
    keeps the mix of node sizes."""
    if scale < 1:
        raise ValueError(f"scale: at least 1, not {scale}")
    sizes: Counter[int] = Counter()
    for line, row in enumerate(csv.DictReader(io.StringIO(text)), start=2):
        gpus = int(_number(row.get("gpu") or "", f"row {line}, gpu", low=0, high=MAX_GPUS, integer=True))
        if gpus:
            sizes[gpus] += 1
    return [
        size
        for size, count in sorted(sizes.items(), reverse=True)
        for _ in range(max(1, round(count / scale)))
    ]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(jobs: list[TraceJob]) -> str:
    """A trace as CSV (offsets in seconds), the format parse_csv reads."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(REQUIRED + OPTIONAL)
    for j in jobs:  # 12 significant digits: a year in seconds to 0.1 ms
        limit = "" if j.time_limit is None else f"{j.time_limit:.12g}"
        row = [f"{j.submit:.12g}", j.gpus, f"{j.runtime:.12g}", j.user, limit, j.priority, j.team or ""]
        writer.writerow(row)
    return out.getvalue()


def from_history(days: int, *, now: datetime, max_jobs: int) -> tuple[list[TraceJob], datetime]:
    """The jobs submitted in the last `days` days that ran and finished (completed, failed, or cancelled
    while running): their submission, GPUs, run time (start to finish of their last attempt), owner,
    team, priority and time limit. The newest `max_jobs` if there are more."""
    from scheduling.models import Job

    since = now - timedelta(days=days)
    rows = list(
        Job.objects.filter(submitted_at__gte=since, started_at__isnull=False, finished_at__isnull=False)
        .order_by("-submitted_at", "-id")
        .values_list(
            "id",
            "submitted_at",
            "gpu_count",
            "started_at",
            "finished_at",
            "owner__username",
            "team__name",
            "priority",
            "time_limit_seconds",
        )[:max_jobs]
    )
    rows.reverse()
    epoch = rows[0][1] if rows else since
    jobs = [
        TraceJob(
            id=jid,
            submit=(submitted - epoch).total_seconds(),
            gpus=gpus,
            runtime=max(0.0, (finished - started).total_seconds()),
            user=user,
            team=team,
            priority=priority,
            time_limit=float(limit) if limit else None,
        )
        for jid, submitted, gpus, started, finished, user, team, priority, limit in rows
    ]
    return jobs, epoch
