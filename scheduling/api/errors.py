"""Map service errors to HTTP: invalid input 400 (naming the field), forbidden 403, conflict 409, a reused
Idempotency-Key 422, and throttled 429 with `Retry-After` and `retry_after` (seconds) in the body. Database
errors are left to queueproject.unavailable (503)."""

import math

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from scheduling.idempotency import KeyReused
from scheduling.services import Conflict
from scheduling.transitions import InvalidTransition, TransitionConflict


def exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        body = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        return Response(body, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, InvalidTransition):
        return Response({"status": [str(exc)]}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, (TransitionConflict, Conflict)):
        return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, KeyReused):
        return Response({"Idempotency-Key": [str(exc)]}, status=status.HTTP_422_UNPROCESSABLE_ENTITY)
    if isinstance(exc, Throttled):
        wait = max(1, math.ceil(exc.wait or 1))
        # DRF's detail already says "Expected available in N seconds."; retry_after is for programs.
        return Response(
            {"detail": str(exc.detail), "retry_after": wait},
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    return drf_exception_handler(exc, context)
