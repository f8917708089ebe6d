"""A job's life as time series: the numbers its progress file reports (`loss`, `accuracy`, …) and the
readings of the GPUs it holds, kept per attempt as MetricPoint rows and read by the job page's charts,
the API and the CLI.

Points are recorded where the news already arrives (the executor's heartbeat when the progress changed,
the node's inventory refresh for readings), each time as one bulk insert. A series is bounded: when it
passes GPUQ_JOB_METRICS_MAX_POINTS it is thinned to half, keeping points spread evenly over its whole time
span (the start of a loss curve stays), so the deletes are amortized over many inserts. A job's progress
adds at most GPUQ_JOB_METRICS_MAX_SERIES series per attempt; its GPUs two each."""

import math
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db.models import Count, Q

from gpus.models import Allocation
from scheduling.models import MetricPoint

NAME_MAX = MetricPoint._meta.get_field("series").max_length
# The readings kept of each GPU a job holds, with their units (series `gpu<index>.<field>`).
GPU_FIELDS = {"utilization_percent": "%", "memory_used_mb": "MiB"}


@dataclass
class Series:
    """One series as read: its name, its unit ("" for a job's own numbers) and its points in time order."""

    name: str
    unit: str = ""
    points: list[tuple[datetime, float]] = field(default_factory=list)


def unit_of(name: str) -> str:
    prefix, _, reading = name.partition(".")
    if prefix.startswith("gpu") and prefix[3:].isdigit():
        return GPU_FIELDS.get(reading, "")
    return ""


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past any float
        return None
    return number if math.isfinite(number) else None


def progress_numbers(progress: dict | None) -> dict[str, float]:
    """The numbers of one progress report by series name: its top-level numbers and those one object deep
    (`{"eval": {"loss": 0.3}}` gives `eval.loss`). Booleans, NaN, infinities and names longer than a
    series name holds are left out; so is a report that was refused (`rejected`)."""
    if not progress or "rejected" in progress:
        return {}
    found = {}
    for key, value in progress.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, item in items:
            name = key if sub is None else f"{key}.{sub}"
            number = _number(item)
            if number is not None and 0 < len(name) <= NAME_MAX:
                found[name] = number
    return found


def record_progress(
    *, job_id: int, attempt: int, progress: dict | None, at: datetime, known: set[str]
) -> int:
    """Store the numbers of one progress report as points of the attempt's series (one bulk insert);
    returns how many. `known` holds the series names the attempt has so far and is updated: a new name
    past GPUQ_JOB_METRICS_MAX_SERIES is dropped, so a job that invents names cannot grow the table."""
    points = []
    for name, value in progress_numbers(progress).items():
        if name not in known:
            if len(known) >= settings.GPUQ_JOB_METRICS_MAX_SERIES:
                continue
            known.add(name)
        points.append(MetricPoint(job_id=job_id, attempt=attempt, series=name, at=at, value=value))
    return _store(points)


def record_gpu_readings(*, node_id: int, readings: dict[int, object], at: datetime) -> int:
    """Store the readings of a node's GPUs (index -> an object with GPU_FIELDS, None where unknown) as
    points of the attempts that hold them (one query for the holders, one bulk insert); returns how many."""
    readings = {
        index: info
        for index, info in readings.items()
        if any(getattr(info, reading, None) is not None for reading in GPU_FIELDS)
    }
    if not readings:  # declared GPUs have no readings: not even the query
        return 0
    held = Allocation.objects.active().filter(gpu__node_id=node_id, gpu__index__in=list(readings))
    points = []
    for job_id, attempt, index in held.values_list("job_id", "attempt", "gpu__index"):
        for reading in GPU_FIELDS:
            value = _number(getattr(readings[index], reading, None))
            if value is not None:
                points.append(
                    MetricPoint(
                        job_id=job_id, attempt=attempt, series=f"gpu{index}.{reading}", at=at, value=value
                    )
                )
    return _store(points)


def _store(points: list[MetricPoint]) -> int:
    if not points:
        return 0
    MetricPoint.objects.bulk_create(points)
    _thin_full({(p.job_id, p.attempt) for p in points}, {p.series for p in points})
    return len(points)


def _thin_full(attempts: set[tuple[int, int]], names: set[str]) -> None:
    """Thin every series among these that passed the bound (one counting query; deletes only then)."""
    limit = settings.GPUQ_JOB_METRICS_MAX_POINTS
    which = Q()
    for job_id, attempt in attempts:
        which |= Q(job_id=job_id, attempt=attempt)
    full = (
        MetricPoint.objects.filter(which, series__in=names)
        .values("job_id", "attempt", "series")
        .annotate(n=Count("id"))
        .filter(n__gt=limit)
    )
    for row in full:
        thin(row["job_id"], row["attempt"], row["series"], keep=limit // 2)


def thin(job_id: int, attempt: int, series: str, *, keep: int) -> int:
    """Keep `keep` points of the series, spread evenly over its time span; returns how many went."""
    rows = list(
        MetricPoint.objects.filter(job_id=job_id, attempt=attempt, series=series)
        .order_by("at", "id")
        .values_list("id", "at")
    )
    kept = {rows[i][0] for i in evenly([at.timestamp() for _, at in rows], keep)}
    gone = [pk for pk, _ in rows if pk not in kept]
    if gone:
        MetricPoint.objects.filter(pk__in=gone).delete()
    return len(gone)


def evenly(times: list[float], keep: int) -> list[int]:
    """Indexes of at most `keep` (≥ 2) of these sorted times, spread evenly over their span: the first
    time in each of `keep - 1` equal slices of the span, and the last time."""
    if len(times) <= keep:
        return list(range(len(times)))
    first, span, slices = times[0], times[-1] - times[0], keep - 1
    chosen, seen = [], set()
    for i, t in enumerate(times[:-1]):
        slice_ = min(int((t - first) / span * slices), slices - 1) if span > 0 else 0
        if slice_ not in seen:
            seen.add(slice_)
            chosen.append(i)
    return [*chosen, len(times) - 1]


def read(
    *, job_id: int, attempt: int, names: list[str] | None = None, after: int = 0
) -> tuple[list[Series], int]:
    """The attempt's series (only `names` when given), with their points after point id `after` (0: all),
    and the last point id read (`after` when none): ask again with it for what came since. One query;
    bounded by the limits on series and on points per series."""
    rows = MetricPoint.objects.filter(job_id=job_id, attempt=attempt, pk__gt=after)
    if names:
        rows = rows.filter(series__in=names)
    found: dict[str, Series] = {}
    last = after
    for pk, name, at, value in rows.order_by("series", "at", "id").values_list("id", "series", "at", "value"):
        series = found.get(name) or found.setdefault(name, Series(name, unit_of(name)))
        series.points.append((at, value))
        last = max(last, pk)
    return list(found.values()), last
