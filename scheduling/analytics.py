"""The analytics figures over a chosen range, from the job table and the GPU allocations (no extra
bookkeeping): queue depth, GPU use and jobs finished per hour, the wait-time distribution, the failure
rate, and GPU-hours per user and per team. The analytics page and `GET /api/v1/analytics` both call
`figures`; its reads are a fixed handful of queries and its range is at most GPUQ_ANALYTICS_MAX_DAYS.
The estimate error compares each started job's first estimated start (scheduling.first_estimates) with
its actual start."""

import math
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils.dateparse import parse_datetime

from gpus.models import Allocation, Gpu
from scheduling.models import Job
from scheduling.states import Status

HOUR = timedelta(hours=1)
WAIT_BUCKETS = ((10, "< 10 s"), (60, "< 1 min"), (600, "< 10 min"), (3600, "< 1 h"), (6 * 3600, "< 6 h"))
LONGEST_WAIT = "≥ 6 h"
ON_TIME_SECONDS = 600  # an estimate within ±10 min of the actual start counts as on time
DEFAULT_RANGE = timedelta(hours=24)


class BadRange(ValueError):
    """A `since` or `until` that cannot be used: `field` names the query parameter. `status_code`: 400
    for what is not a date and time, 422 for dates that do not make a range (the schema cannot say it)."""

    def __init__(self, field: str, message: str, status_code: int = 400):
        super().__init__(message)
        self.field = field
        self.message = message
        self.status_code = status_code


def parse_range(params, now: datetime) -> tuple[datetime, datetime]:
    """`since` and `until` (ISO 8601; UTC when no zone is given) from a query string: by default the
    24 hours up to now; `since` before `until`, at most GPUQ_ANALYTICS_MAX_DAYS apart."""

    def read(name: str) -> datetime | None:
        raw = params.get(name, "").strip()
        if not raw:
            return None
        try:
            value = parse_datetime(raw)
        except ValueError:
            value = None
        if value is None:
            raise BadRange(name, "a date and time in ISO 8601, e.g. 2026-01-31T08:00:00Z")
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    days = settings.GPUQ_ANALYTICS_MAX_DAYS
    try:
        until = read("until") or now
        since = read("since") or until - DEFAULT_RANGE
    except OverflowError:
        raise BadRange("since", "a date and time after the year 1", 422) from None
    if since >= until:
        raise BadRange("since", "must be before until", 422)
    if until - since > timedelta(days=days):
        raise BadRange("since", f"at most {days} days before until (GPUQ_ANALYTICS_MAX_DAYS)", 422)
    return since, until


@dataclass(frozen=True)
class EstimateError:
    """Actual start - first estimated start, over the jobs started in the range that had an estimate:
    positive when a job started later than first estimated."""

    jobs: int
    median_seconds: float  # the median (the mean of the two middle values for an even count)
    p90_seconds: float  # the 90th percentile, nearest rank: the ceil(0.9 n)-th smallest
    on_time_percent: float  # started within ±10 min of the estimate
    later_percent: float  # started more than 10 min after it
    earlier_percent: float  # started more than 10 min before it


def estimate_error(errors: list[float]) -> EstimateError | None:
    """The estimate-error figures of these errors (seconds), or None without any."""
    if not errors:
        return None
    errors, n = sorted(errors), len(errors)

    def share(count: int) -> float:
        return round(100 * count / n, 1)

    return EstimateError(
        jobs=n,
        median_seconds=round(statistics.median(errors), 1),
        p90_seconds=round(errors[math.ceil(0.9 * n) - 1], 1),
        on_time_percent=share(sum(1 for e in errors if abs(e) <= ON_TIME_SECONDS)),
        later_percent=share(sum(1 for e in errors if e > ON_TIME_SECONDS)),
        earlier_percent=share(sum(1 for e in errors if e < -ON_TIME_SECONDS)),
    )


@dataclass(frozen=True)
class Figures:
    since: datetime
    until: datetime
    gpus: int  # healthy GPUs now: the utilization's denominator
    hours: list[datetime]  # the start of each hour the range touches
    queue_depth: list[int]  # jobs waiting at the end of each hour
    gpu_utilization: list[float]  # % of the GPUs' time allocated, each hour
    finished: list[int]  # jobs that ended (any terminal status) in each hour
    waits: list[tuple[str, int]]  # jobs started in the range, by how long they waited
    avg_wait_seconds: float | None
    completed: int  # jobs that ended completed in the range
    failed: int  # … and failed
    gpu_hours_by_user: list[tuple[str, float]]  # most first
    gpu_hours_by_team: list[tuple[str, float]]
    estimate_error: EstimateError | None = None  # None: no job started in the range had an estimate

    @property
    def failure_rate(self) -> float:
        """% of the jobs that ran to an end (completed or failed) that failed; 0 without any."""
        total = self.completed + self.failed
        return round(100 * self.failed / total, 1) if total else 0.0


def _index_at_or_after(t: datetime, first_mark: datetime, count: int) -> int:
    """The first hour whose end (first_mark + i hours) is at or after `t`, within 0..count."""
    return min(count, max(0, math.ceil((t - first_mark) / HOUR)))


def figures(*, since: datetime, until: datetime, now: datetime) -> Figures:
    """Everything the analytics show for [since, until); `now` ends what is still going on."""
    top = since.replace(minute=0, second=0, microsecond=0)
    hours = [top + i * HOUR for i in range(math.ceil((until - top) / HOUR))]
    n, first_mark = len(hours), top + HOUR
    end = min(until, now)

    # Queue depth at the end of each hour: submitted by then, not yet started or ended. A difference
    # array keeps it one pass over the jobs, however long the range.
    diff = [0] * (n + 1)
    waiting = Job.objects.filter(submitted_at__lte=until).filter(
        Q(started_at__isnull=True, finished_at__isnull=True)
        | Q(started_at__gte=since)
        | Q(finished_at__gte=since)
    )
    for submitted, started, finished in waiting.values_list("submitted_at", "started_at", "finished_at"):
        left = started or finished
        lo = _index_at_or_after(submitted, first_mark, n)
        hi = _index_at_or_after(left, first_mark, n) if left else n
        if lo < hi:
            diff[lo] += 1
            diff[hi] -= 1
    depth, running_sum = [], 0
    for i in range(n):
        running_sum += diff[i]
        depth.append(running_sum)

    # GPU time allocated per hour, and per user and team over the range, from one read.
    used = [0.0] * n
    per_user, per_team = defaultdict(float), defaultdict(float)
    allocations = Allocation.objects.filter(allocated_at__lt=until).filter(
        Q(released_at__isnull=True) | Q(released_at__gt=since)
    )
    for start, stop, user, team in allocations.values_list(
        "allocated_at", "released_at", "job__owner__username", "job__team__name"
    ):
        lo, hi = max(start, since), min(stop or now, end)
        if lo >= hi:
            continue
        per_user[user] += (hi - lo).total_seconds() / 3600
        per_team[team or "(no team)"] += (hi - lo).total_seconds() / 3600
        for i in range(max(0, int((lo - top) / HOUR)), min(n, math.ceil((hi - top) / HOUR))):
            overlap = min(hi, hours[i] + HOUR) - max(lo, hours[i])
            used[i] += max(0.0, overlap.total_seconds())
    gpus = max(1, Gpu.objects.filter(healthy=True).count())

    finished = [0] * n
    for at in Job.objects.filter(finished_at__gte=since, finished_at__lt=until).values_list(
        "finished_at", flat=True
    ):
        finished[min(n - 1, int((at - top) / HOUR))] += 1

    waits, total_wait, started, errors = Counter(), 0.0, 0, []
    for submitted, started_at, estimated in Job.objects.filter(
        started_at__gte=since, started_at__lt=until
    ).values_list("submitted_at", "started_at", "first_estimated_start"):
        if estimated is not None:
            errors.append((started_at - estimated).total_seconds())
        seconds = max(0.0, (started_at - submitted).total_seconds())
        waits[next((name for limit, name in WAIT_BUCKETS if seconds < limit), LONGEST_WAIT)] += 1
        total_wait, started = total_wait + seconds, started + 1

    ended = Counter(
        Job.objects.filter(
            finished_at__gte=since, finished_at__lt=until, status__in=[Status.COMPLETED, Status.FAILED]
        ).values_list("status", flat=True)
    )

    def most_first(totals: dict) -> list[tuple[str, float]]:
        return sorted(((k, round(v, 2)) for k, v in totals.items()), key=lambda b: (-b[1], b[0]))

    return Figures(
        since=since,
        until=until,
        gpus=gpus,
        hours=hours,
        queue_depth=depth,
        gpu_utilization=[round(100 * u / (gpus * 3600), 1) for u in used],
        finished=finished,
        waits=[(name, waits[name]) for _, name in WAIT_BUCKETS] + [(LONGEST_WAIT, waits[LONGEST_WAIT])],
        avg_wait_seconds=round(total_wait / started, 1) if started else None,
        completed=ended[Status.COMPLETED],
        failed=ended[Status.FAILED],
        gpu_hours_by_user=most_first(per_user),
        gpu_hours_by_team=most_first(per_team),
        estimate_error=estimate_error(errors),
    )


# --- the page's charts -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chart:
    """One bar chart of the analytics page, drawn by static/gpuq/charts.js with axes from 0 to
    `scale_max`: 100 for percentages, else a round number shared by every chart of the same unit, so that
    bars compare across charts and a 28.6% failure rate fills 28.6% of the height."""

    title: str
    unit: str
    bars: list[tuple[str, float]]  # (label, value)
    note: str = ""
    scale_max: float = 1

    @property
    def spec(self) -> dict:
        """What the page's script draws."""
        return {
            "title": self.title,
            "unit": self.unit,
            "labels": [label for label, _ in self.bars],
            "values": [value for _, value in self.bars],
            "max": self.scale_max,
        }


def round_up(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × a power of ten that is at least `value` (1 for nothing)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    return next(step * power for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def shared_scales(charts: list[Chart]) -> list[Chart]:
    """The charts with their scales: percentages 0-100, other units to the round peak of that unit."""
    peaks: dict[str, float] = {}
    for chart in charts:
        peaks[chart.unit] = max([peaks.get(chart.unit, 0), *(value for _, value in chart.bars)])
    return [
        replace(chart, scale_max=100 if chart.unit == "%" else round_up(peaks[chart.unit]))
        for chart in charts
    ]


def charts(f: Figures) -> list[Chart]:
    form = "%H:00" if f.until - f.since <= DEFAULT_RANGE else "%m-%d %H:00"
    label = [h.strftime(form) for h in f.hours]
    ended = f.completed + f.failed
    return shared_scales(
        [
            Chart(
                "Queue depth",
                "jobs waiting",
                list(zip(label, f.queue_depth, strict=True)),
                "at the end of each hour",
            ),
            Chart(
                "GPU utilization",
                "%",
                list(zip(label, f.gpu_utilization, strict=True)),
                f"allocated share of {f.gpus} GPU(s), per hour",
            ),
            Chart("Jobs finished per hour", "jobs", list(zip(label, f.finished, strict=True))),
            Chart("Wait before start", "jobs", f.waits, "jobs started in the range"),
            Chart(
                "Failure rate", "%", [("failed", f.failure_rate)], f"{f.failed} failed of {ended} finished"
            ),
            Chart("GPU-hours per user", "h", f.gpu_hours_by_user),
            Chart("GPU-hours per team", "h", f.gpu_hours_by_team),
        ]
    )
