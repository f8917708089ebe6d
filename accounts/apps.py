"""App config for accounts: teams, user levels and API tokens."""

from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from accounts import (
            lockout,  # noqa: F401  (connects the login failure signals)
            schema,  # noqa: F401  (registers the token scheme with drf-spectacular)
        )
