"""Every job's time limit (Slurm's DefaultTime/MaxTime): what a submit asks for, else its template's
default, else its level's, else GPUQ_DEFAULT_TIME_LIMIT_SECONDS; never above the template's or the
level's maximum (the smaller when both are set). A default above the maximum is cut to it."""

from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.models import LevelLimits
from accounts.permissions import level_of


def level_limits(user) -> LevelLimits:
    """The time limits of the user's level (an unsaved row with none when no admin set them)."""
    level = level_of(user)
    return LevelLimits.objects.filter(level=level).first() or LevelLimits(level=level)


def resolve_time_limit(*, user, template, requested: int | None, limits: LevelLimits | None = None) -> int:
    """The time limit in seconds of a job `user` submits from `template` (None: a raw argv), asking for
    `requested` seconds (None: the default). ValidationError naming `time_limit_seconds` above the maximum.
    `limits`: the user's level's (level_limits), when the caller already read them."""
    limits = limits or level_limits(user)
    level = limits.level
    maxima = [(limits.max_time_limit_seconds, f"level {level}")]
    if template is not None:
        maxima.insert(0, (template.max_time_limit_seconds, f"template {template.name}"))
    bound = min(((m, source) for m, source in maxima if m is not None), default=None)
    if requested is None:
        default = (
            (template.default_time_limit_seconds if template is not None else None)
            or limits.default_time_limit_seconds
            or settings.GPUQ_DEFAULT_TIME_LIMIT_SECONDS
        )
        return min(default, bound[0]) if bound else default
    if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
        raise ValidationError({"time_limit_seconds": "a whole number of seconds, at least 1"})
    if bound and requested > bound[0]:
        raise ValidationError(
            {"time_limit_seconds": f"at most {bound[0]} seconds (the maximum of {bound[1]})"}
        )
    return requested
