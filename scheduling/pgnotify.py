"""Connection arguments for the PostgreSQL connections that LISTEN (the live relay, the task broker)."""

from django.db import connections


def listen_params(alias: str = "default") -> dict:
    """psycopg connection arguments for a LISTEN connection: Django's own, less what only Django uses."""
    params = connections[alias].get_connection_params()
    for django_only in ("context", "cursor_factory", "prepare_threshold"):
        params.pop(django_only, None)
    return params
