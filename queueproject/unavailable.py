"""While the database is away, answer 503 with Retry-After (JSON under /api/, a plain page elsewhere)."""

import logging

from django.conf import settings
from django.db import InterfaceError, OperationalError, connection
from django.http import HttpResponse, JsonResponse

log = logging.getLogger("gpuq.web")

# OperationalError: connection refused, server closed the connection, a timeout, "database is locked";
# InterfaceError: a connection already closed under us. Both say "try again later", never "your fault".
UNAVAILABLE = (OperationalError, InterfaceError)


def unavailable_response(request, error: Exception) -> HttpResponse:
    retry_after = settings.GPUQ_RETRY_AFTER_SECONDS
    log.warning("%s %s: database unavailable (%s)", request.method, request.path, error)
    pool = getattr(connection, "pool", None)  # gpuq_web's on PostgreSQL (gpuq_web.pool_connections)
    if pool is not None:
        pool.drain()  # its idle connections likely broke with this one: the next requests get new ones
    if request.path.startswith("/api/"):
        response = JsonResponse(
            {"detail": "The database is unavailable; retry later.", "retry_after": retry_after},
            status=503,
        )
    else:
        response = HttpResponse(
            "<!doctype html><title>gpuq: unavailable</title><h1>Service unavailable</h1>"
            f"<p>gpuq cannot reach its database just now. Try again in {retry_after} seconds.</p>",
            status=503,
        )
    response["Retry-After"] = str(retry_after)
    return response


class DatabaseUnavailableMiddleware:
    """Maps a database error raised by a view (API views re-raise what DRF does not handle) to a 503."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if isinstance(exception, UNAVAILABLE):
            return unavailable_response(request, exception)
        return None
