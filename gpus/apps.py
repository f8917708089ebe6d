"""App config for gpus: nodes, GPUs, allocations, inventory and placement."""

from django.apps import AppConfig


class GpusConfig(AppConfig):
    name = "gpus"
    default_auto_field = "django.db.models.BigAutoField"
