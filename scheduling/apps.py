"""App config for scheduling: jobs, the state machine, the planner, the tick and the executor."""

from django.apps import AppConfig


class SchedulingConfig(AppConfig):
    name = "scheduling"
    default_auto_field = "django.db.models.BigAutoField"
