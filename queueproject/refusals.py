"""Refusals of well-formed input (a request the OpenAPI schema allows) for reasons the schema cannot
know: they are ValidationErrors (pages, admin and commands show them by field like any other), but the API
answers them with their own status, not 400, which is kept for input the schema itself rules out.

Each message carries the refusal's code, so a refusal raised inside a DRF serializer (which turns it into
its own ValidationError) keeps its status: `status_of` reads it back from the error detail."""

from django.core.exceptions import ValidationError


class Refusal(ValidationError):
    status_code = 400
    code = "invalid"

    def __init__(self, message):
        def coded(messages):
            items = messages if isinstance(messages, list) else [messages]
            return [ValidationError(str(item), code=self.code) for item in items]

        if isinstance(message, dict):
            super().__init__({field: coded(value) for field, value in message.items()})
        else:
            super().__init__(coded(message))


class Forbidden(Refusal):
    """Not allowed for this user's level or rights (a priority over the ceiling): 403, naming the field."""

    status_code = 403
    code = "forbidden"


class NotNow(Refusal):
    """The present state of the job or queue forbids it (cancel a finished job, approve one not blocked):
    409, naming the field."""

    status_code = 409
    code = "not_now"


class Unprocessable(Refusal):
    """Well formed, but naming what does not exist or cannot be used (an unknown template, user, team or
    job; parameters the template's own schema refuses; a job no node could ever run; values that do not
    fit together in a way the schema cannot say; a key of an object that breaks a rule on names, such as
    an environment variable's, which OpenAPI 3.0 cannot state: the schema states it with JSON Schema's
    `propertyNames`, which 3.1 tools read and schemathesis, reading 3.0, does not): 422, naming the
    field."""

    status_code = 422
    code = "unprocessable"


_STATUS_BY_CODE = {kind.code: kind.status_code for kind in (Forbidden, NotNow, Unprocessable)}
_STATUS_BY_CODE["does_not_exist"] = Unprocessable.status_code  # DRF's related fields: no such name or id
_STATUS_BY_CODE["unique"] = NotNow.status_code  # DRF's UniqueValidator: the name is taken


def status_of(detail) -> int:
    """The status of a DRF error detail (nested dicts and lists of ErrorDetail) or of a Django
    ValidationError (which keeps the codes of the errors it gathers, as a model's full_clean does): a
    refusal's when every message in it comes from refusals (the most general of them: 403 before 409
    before 422), else 400."""
    if isinstance(detail, ValidationError):
        detail = detail.error_dict if hasattr(detail, "error_dict") else detail.error_list
    codes, stack = set(), [detail]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, ValidationError) and not hasattr(item, "message"):
            stack.append(item.error_dict if hasattr(item, "error_dict") else item.error_list)
        else:
            codes.add(getattr(item, "code", None))
    if not codes or not codes <= _STATUS_BY_CODE.keys():
        return 400
    return min(_STATUS_BY_CODE[code] for code in codes)
