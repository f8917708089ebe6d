"""Figures for the analytics page, from the job table and the GPU allocations (no extra bookkeeping):
queue depth and GPU use over the last 24 hours, jobs finished per hour, the wait-time distribution and
the failure rate over the last 7 days, and GPU-hours per user and per team."""

from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Q

from gpus.models import Allocation, Gpu
from scheduling.models import Job
from scheduling.states import Status

WAIT_BUCKETS = ((10, "< 10 s"), (60, "< 1 min"), (600, "< 10 min"), (3600, "< 1 h"), (6 * 3600, "< 6 h"))


@dataclass(frozen=True)
class Chart:
    title: str
    unit: str
    bars: list[tuple[str, float]]  # (label, value)
    note: str = ""

    @property
    def peak(self) -> float:
        return max((v for _, v in self.bars), default=0) or 1

    @property
    def width(self) -> int:
        return 100 * len(self.bars)

    @property
    def shapes(self) -> list[dict]:
        """Each bar's rectangle in a box 100 units wide per bar and 100 high."""
        shapes = []
        for i, (label, value) in enumerate(self.bars):
            height = round(100 * value / self.peak, 1)
            shapes.append(
                {"x": 100 * i + 10, "y": 100 - height, "w": 80, "h": height, "label": label, "value": value}
            )
        return shapes


def _hours(now: datetime, count: int) -> list[datetime]:
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=count - 1 - i) for i in range(count)]


def _overlap(start: datetime, end: datetime, lo: datetime, hi: datetime) -> float:
    return max(0.0, (min(end, hi) - max(start, lo)).total_seconds())


def charts(now: datetime) -> list[Chart]:
    day_ago, week_ago = now - timedelta(hours=24), now - timedelta(days=7)
    hours = _hours(now, 24)
    label = [h.strftime("%H:00") for h in hours]

    # Queue depth at the end of each hour: submitted by then, not yet started or ended.
    waiting = (
        Job.objects.filter(submitted_at__lte=now)
        .filter(
            Q(started_at__isnull=True, finished_at__isnull=True)
            | Q(started_at__gte=day_ago)
            | Q(finished_at__gte=day_ago)
        )
        .values_list("submitted_at", "started_at", "finished_at")
    )
    depth = Counter()
    for submitted, started, finished in waiting:
        left = started or finished or now + timedelta(days=1)
        for i, hour in enumerate(hours):
            mark = hour + timedelta(hours=1)
            if submitted <= mark < left:
                depth[i] += 1

    # GPU use per hour: allocated GPU-seconds over the GPUs there are.
    gpus = max(1, Gpu.objects.filter(healthy=True).count())
    used = Counter()
    for start, end in Allocation.objects.filter(
        Q(released_at__isnull=True) | Q(released_at__gte=day_ago)
    ).values_list("allocated_at", "released_at"):
        for i, hour in enumerate(hours):
            used[i] += _overlap(start, end or now, hour, hour + timedelta(hours=1))

    finished = Counter()
    for at in Job.objects.filter(finished_at__gte=day_ago).values_list("finished_at", flat=True):
        finished[int((at - hours[0]).total_seconds() // 3600)] += 1

    waits = Counter()
    for submitted, started in Job.objects.filter(started_at__gte=week_ago).values_list(
        "submitted_at", "started_at"
    ):
        seconds = (started - submitted).total_seconds()
        waits[next((name for limit, name in WAIT_BUCKETS if seconds < limit), "≥ 6 h")] += 1

    ended = Counter(
        Job.objects.filter(
            finished_at__gte=week_ago, status__in=[Status.COMPLETED, Status.FAILED]
        ).values_list("status", flat=True)
    )
    total = ended[Status.COMPLETED] + ended[Status.FAILED]

    per_user, per_team = defaultdict(float), defaultdict(float)
    for start, end, user, team in Allocation.objects.filter(
        Q(released_at__isnull=True) | Q(released_at__gte=week_ago)
    ).values_list("allocated_at", "released_at", "job__owner__username", "job__team__name"):
        hours_used = _overlap(start, end or now, week_ago, now) / 3600
        per_user[user] += hours_used
        per_team[team or "(no team)"] += hours_used

    return [
        Chart(
            "Queue depth",
            "jobs waiting",
            [(label[i], depth[i]) for i in range(24)],
            "at the end of each hour",
        ),
        Chart(
            "GPU utilization",
            "%",
            [(label[i], round(100 * used[i] / (gpus * 3600), 1)) for i in range(24)],
            f"allocated share of {gpus} GPU(s), per hour",
        ),
        Chart("Jobs finished per hour", "jobs", [(label[i], finished[i]) for i in range(24)]),
        Chart(
            "Wait before start",
            "jobs",
            [(name, waits[name]) for _, name in WAIT_BUCKETS] + [("≥ 6 h", waits["≥ 6 h"])],
            "jobs started in the last 7 days",
        ),
        Chart(
            "Failure rate",
            "%",
            [("failed", round(100 * ended[Status.FAILED] / total, 1) if total else 0)],
            f"{ended[Status.FAILED]} failed of {total} finished in the last 7 days",
        ),
        Chart(
            "GPU-hours per user",
            "h",
            sorted(((k, round(v, 2)) for k, v in per_user.items()), key=lambda b: -b[1]),
        ),
        Chart(
            "GPU-hours per team",
            "h",
            sorted(((k, round(v, 2)) for k, v in per_team.items()), key=lambda b: -b[1]),
        ),
    ]
