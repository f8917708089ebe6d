"""App config for scheduling: jobs, the state machine, the planner, the tick and the executor."""

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from scheduling import checks  # noqa: F401  (registers the run-as system checks)
