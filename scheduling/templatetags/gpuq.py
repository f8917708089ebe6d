"""Template helpers for gpuq's pages."""

from django import template

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
