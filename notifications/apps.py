"""Notifications: e-mail and signed webhooks about jobs, delivered from the event stream."""

from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "notifications"
