"""App config for scheduling: jobs, the state machine, the planner, the tick and the executor."""

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.conf import settings

        from scheduling import checks  # noqa: F401  (registers the run-as system checks)

        if settings.GPUQ_CLOCK_OFFSET_SECONDS:
            skew_clock(settings.GPUQ_CLOCK_OFFSET_SECONDS)


def skew_clock(seconds: float) -> None:
    """Test only (GPUQ_CLOCK_OFFSET_SECONDS): this process reads a wall clock `seconds` off, as a machine
    whose clock is wrong. Everything gpuq and django-q2 read as "now" goes through timezone.now; monotonic
    clocks stay true, as on such a machine."""
    from datetime import timedelta

    from django.utils import timezone

    true_now, offset = timezone.now, timedelta(seconds=seconds)
    timezone.now = lambda: true_now() + offset
