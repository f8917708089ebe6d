"""GPU-seconds used, from allocation rows (one row per GPU, so their durations add up to GPU-seconds):
per user and team in the current quota day and week, and decayed for fair share."""

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from django.db.models import Q

from gpus.models import Allocation


def window_starts(now: datetime, tz: str) -> tuple[datetime, datetime]:
    """The start of today and of this week (Monday) at midnight in `tz`, as aware datetimes."""
    local = now.astimezone(ZoneInfo(tz))
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return day, day - timedelta(days=day.weekday())


@dataclass
class Usage:
    user_day: dict[int, float]
    user_week: dict[int, float]
    team_day: dict[int, float]
    team_week: dict[int, float]


def _rows(since: datetime):
    return Allocation.objects.filter(Q(released_at__isnull=True) | Q(released_at__gt=since)).values_list(
        "allocated_at", "released_at", "job__owner_id", "job__team_id"
    )


def quota_usage(now: datetime, tz: str) -> Usage:
    day_start, week_start = window_starts(now, tz)
    usage = Usage(*(defaultdict(float) for _ in range(4)))
    for allocated, released, owner, team in _rows(week_start):
        end = min(released or now, now)
        week = (end - max(allocated, week_start)).total_seconds()
        day = (end - max(allocated, day_start)).total_seconds()
        if week > 0:
            usage.user_week[owner] += week
            if team is not None:
                usage.team_week[team] += week
        if day > 0:
            usage.user_day[owner] += day
            if team is not None:
                usage.team_day[team] += day
    return usage


def decayed_usage(now: datetime, half_life_hours: float) -> tuple[dict[int, float], dict[int, float]]:
    """GPU-seconds weighted by 0.5 ** (hours since the GPU was released / half-life); running: weight 1."""
    half_life = half_life_hours * 3600
    users: dict[int, float] = defaultdict(float)
    teams: dict[int, float] = defaultdict(float)
    for allocated, released, owner, team in _rows(now - timedelta(seconds=10 * half_life)):
        end = released or now
        weight = 0.5 ** (max(0.0, (now - end).total_seconds()) / half_life)
        value = max(0.0, (end - allocated).total_seconds()) * weight
        users[owner] += value
        if team is not None:
            teams[team] += value
    return users, teams
