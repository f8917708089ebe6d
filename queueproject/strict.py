"""Strict API input: one serializer mixin and one JSON parser that every API input goes through.

`StrictInput` (or the ready `StrictSerializer`) refuses, before DRF's own validation, with a 400 that names
the field: fields the serializer does not know, values of the wrong JSON type (no "2" for an int, no 1 for
a string, no 0 for a bool), integers outside what the database column holds, strings, lists, objects and
free JSON past a size bound (the bound is in the message), and NUL characters (a process cannot take them
in argv or env, and PostgreSQL cannot store them in text or JSON). A field's own `max_length`,
`max_value`, `min_value` win over the defaults here. `StrictJSONParser` turns JSON nested too deeply for
Python into a 400 instead of a RecursionError.
"""

import json
from collections.abc import Mapping
from functools import cached_property

from rest_framework import relations, serializers
from rest_framework.exceptions import ErrorDetail, ParseError
from rest_framework.fields import empty
from rest_framework.parsers import JSONParser
from rest_framework.settings import api_settings
from rest_framework.utils import html

from queueproject.refusals import Unprocessable

INT_MAX = 2**31 - 1  # a PostgreSQL `integer`: the default bound of an integer field
BIG_INT_MAX = 2**63 - 1  # a PostgreSQL `bigint`: ids and PositiveBigIntegerField columns
TEXT_MAX = 10_000  # characters in a string field that names no max_length
ITEMS_MAX = 1_000  # items in a list or keys in an object that names no max_length
JSON_MAX_BYTES = 65_536  # free JSON (template params, policy configs, progress), encoded
JSON_MAX_DEPTH = 32  # nesting of free JSON


def json_problem(value, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH) -> str | None:
    """Why a free JSON value is refused (too big, too deep, a NUL character), or None."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if depth > max_depth:
            return f"nested more than {max_depth} levels deep"
        if isinstance(item, str) and "\x00" in item:
            return "contains a NUL character"
        if isinstance(item, Mapping):
            stack.extend((key, depth) for key in item)
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            stack.extend((v, depth + 1) for v in item)
    size = len(json.dumps(value, ensure_ascii=False).encode())
    if size > max_bytes:
        return f"at most {max_bytes} bytes of JSON ({size} given)"
    return None


_JSON_TYPES = {dict: "an object", list: "a list", str: "a string", bool: "true or false", int: "an integer"}


def _wrong_type(value, expected: type) -> list[str] | None:
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        return [f"must be {_JSON_TYPES[expected]}, not {type(value).__name__}"]
    return None


def _bounded_int(field, value: int, default_max: int) -> list[str] | None:
    low = field.min_value if field.min_value is not None else -default_max
    high = field.max_value if field.max_value is not None else default_max
    if not low <= value <= high:
        return [f"must be from {low} to {high}"]
    return None


def field_problem(field, value):
    """Errors of one raw input value for a DRF field (a list of messages, or a dict by key/index for
    the items of a list or object), or None when DRF's own validation may take it from here."""
    if value is None:
        return None  # DRF says whether null is allowed
    if isinstance(field, serializers.ManyRelatedField):
        return _list_problem(value, field.child_relation, ITEMS_MAX)
    if isinstance(field, serializers.ListField | serializers.ListSerializer):
        return _list_problem(value, field.child, field.max_length or ITEMS_MAX)
    if isinstance(field, serializers.DictField):
        return _dict_problem(value, field.child)
    if isinstance(field, serializers.JSONField):
        problem = json_problem(value)
        return [problem] if problem else None
    if isinstance(field, serializers.BooleanField):
        return _wrong_type(value, bool)
    if isinstance(field, serializers.IntegerField):
        return _wrong_type(value, int) or _bounded_int(field, value, INT_MAX)
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        if isinstance(value, bool) or not isinstance(value, int | float):
            return [f"must be a number, not {type(value).__name__}"]
        return None
    if isinstance(field, relations.PrimaryKeyRelatedField):
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"must be an id (an integer), not {type(value).__name__}"]
        return None if 1 <= value <= BIG_INT_MAX else [f"must be an id from 1 to {BIG_INT_MAX}"]
    if isinstance(field, serializers.CharField | serializers.ChoiceField | serializers.DateTimeField):
        return _string_problem(field, value)
    if isinstance(field, relations.SlugRelatedField):
        return _string_problem(field, value)
    return None


def _string_problem(field, value):
    wrong = _wrong_type(value, str)
    if wrong:
        return wrong
    if "\x00" in value:
        return ["must not contain a NUL character"]
    limit = getattr(field, "max_length", None) or TEXT_MAX
    if len(value) > limit:
        return [f"at most {limit} characters ({len(value)} given)"]
    return None


def _list_problem(value, child, limit: int):
    wrong = _wrong_type(value, list)
    if wrong:
        return wrong
    if len(value) > limit:
        return [f"at most {limit} items ({len(value)} given)"]
    errors = {i: problem for i, item in enumerate(value) if (problem := field_problem(child, item))}
    return errors or None


def _dict_problem(value, child):
    wrong = _wrong_type(value, dict)
    if wrong:
        return wrong
    if len(value) > ITEMS_MAX:
        return [f"at most {ITEMS_MAX} keys ({len(value)} given)"]
    errors = {}
    for key, item in value.items():
        if "\x00" in key:  # OpenAPI 3.0 cannot say it of a key (see Unprocessable): 422
            errors[key] = [ErrorDetail("a key must not contain a NUL character", code=Unprocessable.code)]
        elif problem := field_problem(child, item):
            errors[key] = problem
    return errors or None


class StrictInput:
    """Mixin for an input serializer: see the module docstring. Put it before the DRF base class:
    `class ThingIn(StrictInput, serializers.Serializer)`."""

    _given: frozenset[str] | None = None  # while validating a JSON object: its keys

    def to_internal_value(self, data):
        if not isinstance(data, Mapping):
            raise serializers.ValidationError(
                {api_settings.NON_FIELD_ERRORS_KEY: [f"must be a JSON object, not {type(data).__name__}"]}
            )
        writable = self._writable
        errors = {}
        for key in data:
            if key not in writable:
                errors[key] = [f"unknown field; known fields: {', '.join(sorted(writable)) or 'none'}"]
        for name, field in writable.items():
            if name in data and (problem := field_problem(field, data[name])):
                errors[name] = problem
        if errors:
            raise serializers.ValidationError(errors)
        if html.is_html_input(data):  # a form's fields may be named otherwise ("argv[0]"): DRF's own way
            return super().to_internal_value(data)
        self._given = frozenset(data)
        try:
            return super().to_internal_value(data)
        finally:
            self._given = None

    @cached_property
    def _writable(self) -> dict:
        return {name: field for name, field in self.fields.items() if not field.read_only}

    @cached_property
    def _needed_when_absent(self) -> tuple:
        """The writable fields that say something when absent (required: an error; a default)."""
        return tuple(f for f in self._writable.values() if f.required or f.default is not empty)

    @property
    def _writable_fields(self):
        """DRF validates every writable field, each absent one only to skip it (a bulk submission of
        thousands of jobs spent a third of its checking there): while a JSON object is validated, only
        its own fields and those needed when absent, in the serializer's order."""
        if self._given is None:
            yield from super()._writable_fields
            return
        needed = self._needed_when_absent
        for field in self._writable.values():
            if field.field_name in self._given or field in needed:
                yield field


class StrictSerializer(StrictInput, serializers.Serializer):
    """A plain input serializer with strict input."""


def whole_number(raw: str) -> bool:
    """Whether a query parameter is a whole number in ASCII digits (`str.isdigit` also takes "²")."""
    return raw.isascii() and raw.isdigit()


def strict_body(serializer_class, request) -> dict:
    """The validated body of a request whose serializer is strict (raises the 400)."""
    data = serializer_class(data=request.data)
    data.is_valid(raise_exception=True)
    return data.validated_data


class StrictJSONParser(JSONParser):
    """DRF's JSON parser, but JSON nested too deeply for Python's decoder is a 400, not a 500."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - nested too deeply") from None
