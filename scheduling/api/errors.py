"""Map service errors to HTTP: invalid input 400 (naming the field; in a bulk submission, the job's index
and the field), forbidden 403, conflict 409 (also a transition the job's status forbids), a reused
Idempotency-Key 422, well-formed input refused for a reason the schema cannot know (queueproject.refusals:
403, 409 or 422, naming the field), and throttled 429 with `Retry-After` and `retry_after` (seconds) in the body. Database
errors are left to queueproject.unavailable (503)."""

import math

from django.core.exceptions import ValidationError
from rest_framework import status
from rest_framework.exceptions import Throttled
from rest_framework.exceptions import ValidationError as DRFValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from queueproject.refusals import status_of
from scheduling.idempotency import KeyReused
from scheduling.services import Conflict
from scheduling.sweeps import BulkRejected
from scheduling.transitions import InvalidTransition, TransitionConflict


def exception_handler(exc, context):
    if isinstance(exc, ValidationError):
        body = exc.message_dict if hasattr(exc, "error_dict") else {"detail": exc.messages}
        # queueproject.refusals: schema-valid input refused for the system's state or the user's rights
        return Response(body, status=status_of(exc))
    if isinstance(exc, BulkRejected):
        return Response(exc.as_body(), status=exc.status_code)
    if isinstance(exc, DRFValidationError):
        response = drf_exception_handler(exc, context)
        response.status_code = status_of(exc.detail)
        return response
    if isinstance(exc, InvalidTransition):
        return Response({"status": [str(exc)]}, status=status.HTTP_409_CONFLICT)
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
