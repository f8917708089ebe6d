"""Paging of API lists: `limit` and `offset`, the limit capped at GPUQ_MAX_PAGE_SIZE (a larger one is
served as the cap), GPUQ_PAGE_SIZE without one. A value that is not a whole number is a 400 naming it."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, inline_serializer
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination

from queueproject.schema import NO_NUL
from queueproject.strict import whole_number
from scheduling.listing import SORTS, with_nul
from scheduling.models import WaitReason
from scheduling.states import Status

OFFSET_MAX = 10**12  # far past any list; keeps OFFSET within what SQLite and PostgreSQL take


class CappedLimitOffset(LimitOffsetPagination):
    @property
    def default_limit(self):
        return settings.GPUQ_PAGE_SIZE

    @property
    def max_limit(self):
        return settings.GPUQ_MAX_PAGE_SIZE

    def paginate_queryset(self, queryset, request, view=None):
        for name in (self.limit_query_param, self.offset_query_param):
            raw = request.query_params.get(name)
            if raw is not None and not (whole_number(raw) and int(raw) <= OFFSET_MAX):
                raise ValidationError({name: [f"a whole number from 0 to {OFFSET_MAX}"]})
        return super().paginate_queryset(queryset, request, view)


def paged(name: str, item) -> serializers.Serializer:
    """The schema of one page of a CappedLimitOffset list of `item` (a serializer instance or class)."""
    return inline_serializer(
        name,
        {
            "count": serializers.IntegerField(help_text="how many in all"),
            "next": serializers.URLField(allow_null=True, help_text="the next page; null: this is the last"),
            "previous": serializers.URLField(allow_null=True, help_text="the page before; null: the first"),
            "results": item(many=True) if isinstance(item, type) else item,
        },
    )


def whole(name: str, description: str, *, low: int = 0, high: int = OFFSET_MAX, **kwargs) -> OpenApiParameter:
    """A whole-number query parameter, declared with the bounds the view enforces (outside them: 400)."""
    schema = {"type": "integer", "minimum": low, "maximum": high}
    return OpenApiParameter(name, schema, description=description, **kwargs)


def text(name: str, description: str, *, min_length: int = 0, max_length: int | None = None, **kwargs):
    """A free-text query parameter (a name or a search), declared with the bounds the view enforces."""
    schema = {"type": "string", "minLength": min_length, "pattern": NO_NUL}
    if max_length is not None:
        schema["maxLength"] = max_length
    return OpenApiParameter(name, schema, description=description, **kwargs)


def choice(name: str, values, description: str, **kwargs) -> OpenApiParameter:
    """A query parameter that takes one of `values`."""
    return OpenApiParameter(name, {"type": "string", "enum": list(values)}, description=description, **kwargs)


# The query parameters of a CappedLimitOffset list, for its extend_schema (a larger limit is served as the
# cap, so the schema allows any up to OFFSET_MAX).
PAGE_PARAMETERS = [
    whole("limit", "page size (default GPUQ_PAGE_SIZE, 50; at most GPUQ_MAX_PAGE_SIZE, 500)"),
    whole("offset", "skip this many"),
]


# The filters of scheduling.listing.Filters (the jobs list and the queue), with the values they take.
FILTER_PARAMETERS = [
    OpenApiParameter(
        "status",
        {"type": "array", "items": {"type": "string", "enum": ["", *Status.values]}},
        style="form",
        explode=True,
        description="only these statuses: repeat the parameter (or comma-separate); empty: any",
    ),
    text("owner", "only this user's (a username; admins and leads see others')"),
    text("team", "only this team's"),
    choice("reason", WaitReason.values, "only those waiting for this reason"),
    text("template", "only those of this template"),
    text("q", "search: a job id, or text in its name or its owner's username"),
    choice("sort", ["", *SORTS], "newest, oldest, priority, gpus, owner, or the queue's position (default)"),
]


def refuse_nul(params, *names: str) -> None:
    """A 400 naming the first of these query parameters that holds a NUL character (PostgreSQL cannot
    compare text with one in it)."""
    if name := with_nul(params, *names):
        raise ValidationError({name: ["must not contain a NUL character"]})
