"""GPU-time quotas: a user's usage against their own and their team's limits, and setting quotas."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.models import Team
from accounts.permissions import is_admin, team_of
from scheduling import policies, usage
from scheduling.models import GpuQuota, PolicyType


def _window(used: float, limit: int | None, warn: float) -> dict:
    if limit is None:
        return {
            "used_gpu_seconds": round(used),
            "limit_gpu_seconds": None,
            "remaining_gpu_seconds": None,
            "warning": False,
            "exceeded": False,
        }
    return {
        "used_gpu_seconds": round(used),
        "limit_gpu_seconds": limit,
        "remaining_gpu_seconds": max(0, round(limit - used)),
        "warning": used >= warn * limit,
        "exceeded": used >= limit,
    }


def quota_status(user) -> dict:
    """Used, limit, remaining, warning (past `warn_fraction`, 80% by default) and exceeded, for the
    current day and week, for the user and for their team. No quota row: unlimited."""
    config = policies.enabled_configs().get(PolicyType.QUOTA, policies.DEFAULTS[PolicyType.QUOTA])
    now = timezone.now()
    used = usage.quota_usage(now, config["timezone"])
    day_start, week_start = usage.window_starts(now, config["timezone"])
    warn = config["warn_fraction"]
    mine = GpuQuota.objects.filter(user=user).first()
    team = team_of(user)
    theirs = GpuQuota.objects.filter(team=team).first() if team else None
    body = {
        "timezone": config["timezone"],
        "day_started_at": day_start.isoformat(),
        "week_started_at": week_start.isoformat(),
        "user": {
            "daily": _window(used.user_day.get(user.pk, 0.0), mine.daily_gpu_seconds if mine else None, warn),
            "weekly": _window(
                used.user_week.get(user.pk, 0.0), mine.weekly_gpu_seconds if mine else None, warn
            ),
        },
        "team": None,
    }
    if team:
        body["team"] = {
            "name": team.name,
            "daily": _window(
                used.team_day.get(team.pk, 0.0), theirs.daily_gpu_seconds if theirs else None, warn
            ),
            "weekly": _window(
                used.team_week.get(team.pk, 0.0), theirs.weekly_gpu_seconds if theirs else None, warn
            ),
        }
    windows = [
        w for part in (body["user"], body["team"] or {}) for k, w in part.items() if k in ("daily", "weekly")
    ]
    body["warning"] = any(w["warning"] for w in windows)
    body["exceeded"] = any(w["exceeded"] for w in windows)
    return body


def quota_set(
    *, by, user=None, team: Team | None = None, daily_gpu_seconds=None, weekly_gpu_seconds=None
) -> GpuQuota | None:
    """Set a user's or a team's quota; both limits empty removes it (unlimited)."""
    if not is_admin(by):
        raise PermissionDenied("Only admins set quotas.")
    if (user is None) == (team is None):
        raise ValidationError({"user": "give a user or a team"})
    for field, value in (
        ("daily_gpu_seconds", daily_gpu_seconds),
        ("weekly_gpu_seconds", weekly_gpu_seconds),
    ):
        if value is not None and (not isinstance(value, int) or value < 0):
            raise ValidationError({field: "a whole number of GPU-seconds, or null for no limit"})
    target = {"user": user} if user is not None else {"team": team}
    if daily_gpu_seconds is None and weekly_gpu_seconds is None:
        GpuQuota.objects.filter(**target).delete()
        return None
    quota, _ = GpuQuota.objects.update_or_create(
        **target, defaults={"daily_gpu_seconds": daily_gpu_seconds, "weekly_gpu_seconds": weekly_gpu_seconds}
    )
    from scheduling.ticker import request_tick

    request_tick()
    return quota
