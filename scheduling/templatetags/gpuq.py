"""Template helpers for gpuq's pages."""

import time
from functools import lru_cache
from types import SimpleNamespace

from django import template
from django.template.loader import render_to_string
from django.urls import get_script_prefix, reverse
from django.utils.safestring import mark_safe

from accounts.permissions import is_lead_or_admin
from scheduling import listing

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


_ROW_TEMPLATES = {kind: f"scheduling/_queue_row_{kind}.html" for kind in ("running", "pending", "held")}
_CSRF_MARK = "gpuqCsrfTokenMark"  # where a kept row's CSRF token goes (a token is per session)


@register.simple_tag(takes_context=True)
def queue_row(context, kind: str, entry) -> str:
    """One row of the queue page (`kind`: running, pending or held). After an event every open page
    fetches its rows again: a row is rendered once per queue version (the page's `row_version`) for all
    who may see it and act on it alike, and each response gets its own CSRF token. The row's template
    sees only what its key holds: the job, whether this user may open it and act on it, the page's path
    and query (its buttons come back to them), and the minute (a running job's "started 5 minutes ago")."""
    job, request = entry.job, context["request"]
    can_see, can_act = job.id in context["visible"], job.id in context["actable"]
    query = context.get("query", "")
    minute = int(time.time() // 60) if kind == "running" else None
    key = (kind, job.id, can_see, can_act, request.path, query, minute)

    def render() -> str:
        return render_to_string(
            _ROW_TEMPLATES[kind],
            {
                "entry": entry,
                "job": job,
                "visible": {job.id} if can_see else set(),
                "actable": {job.id} if can_act else set(),
                "query": query,
                "request": SimpleNamespace(path=request.path),
                "csrf_token": _CSRF_MARK,
            },
        )

    html = listing.row_html(context["row_version"], key, render)
    return mark_safe(html.replace(_CSRF_MARK, str(context.get("csrf_token", ""))))
