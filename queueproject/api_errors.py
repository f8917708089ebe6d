"""Errors under /api/ are JSON in the API's one error shape, `{"detail": "…"}`, whoever raises them:
Django's 404 for an unknown URL, a body over DATA_UPLOAD_MAX_MEMORY_SIZE (413, refused before it is read,
so nothing logs a traceback), and any other 4xx that would otherwise be an HTML page."""

import logging

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse

log = logging.getLogger("gpuq.web")

API_PREFIX = "/api/"


def _too_big(request) -> JsonResponse:
    limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    log.info("%s %s: body over %s bytes refused (413)", request.method, request.path, limit)
    return JsonResponse({"detail": f"The request body is larger than {limit} bytes."}, status=413)


class ApiErrorsMiddleware:
    """Keeps API errors JSON: see the module docstring."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path.startswith(API_PREFIX):
            return self.get_response(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if limit is not None and length > limit:
            return _too_big(request)
        response = self.get_response(request)
        if 400 <= response.status_code < 500 and "json" not in response.get("Content-Type", ""):
            detail = response.reason_phrase or "Client error"
            return JsonResponse(
                {"detail": f"{detail}."}, status=response.status_code, headers=_kept(response)
            )
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig) and request.path.startswith(API_PREFIX):
            return _too_big(request)  # a body without a Content-Length that grew past the limit
        return None


def _kept(response) -> dict[str, str]:
    return {name: response[name] for name in ("Allow", "Retry-After", "WWW-Authenticate") if name in response}
