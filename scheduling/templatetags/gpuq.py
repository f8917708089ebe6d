"""Template helpers for gpuq's pages."""

from functools import lru_cache

from django import template
from django.urls import get_script_prefix, reverse

from accounts.permissions import is_lead_or_admin

register = template.Library()

TIERS = ((30, "urgent"), (20, "high"), (10, "normal"), (0, "low"))


@register.filter
def tier(priority: int) -> str:
    """The named tier of a priority: urgent, high, normal, low or background (for its colour)."""
    return next((name for floor, name in TIERS if priority >= floor), "background")


@register.filter
def percent(progress) -> str:
    fraction = progress.get("fraction") if isinstance(progress, dict) else None
    return f"{round(fraction * 100)}%" if isinstance(fraction, (int, float)) else ""


@register.filter
def hours(seconds) -> str:
    """GPU-seconds as hours, e.g. 5400 → "1.5"."""
    return f"{(seconds or 0) / 3600:.1f}"


@register.filter
def mul(value, factor) -> float:
    return (value or 0) * float(factor)


@register.filter
def approves(user) -> bool:
    """Leads and admins approve jobs: the header links the approvals inbox for them only."""
    return is_lead_or_admin(user)


_ANY_ID = 987654321


@lru_cache(maxsize=16)
def _job_pattern(prefix: str, name: str, *rest: str) -> str:
    return reverse(name, args=[_ANY_ID, *rest])


@register.simple_tag
def job_url(job_id, action: str = "") -> str:
    """`{% url 'job' id %}`, or `{% url 'job-action' id action %}`, for lists: the URL pattern is
    resolved once per process instead of once per row (a page of 50 jobs has up to 150 of them)."""
    args = ("job-action", action) if action else ("job",)
    return _job_pattern(get_script_prefix(), *args).replace(str(_ANY_ID), str(int(job_id)), 1)
