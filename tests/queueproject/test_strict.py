"""The strict-input rules themselves (queueproject.strict), without a request: free JSON bounds (template
params, policy configs, a job's progress.json) and ASCII-only whole numbers."""

import pytest
from django.http import QueryDict
from rest_framework import serializers
from rest_framework.fields import empty

from queueproject.strict import StrictSerializer, json_problem, whole_number


def _nested(depth: int):
    value = 1
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ({"fraction": 0.5, "step": [1, 2]}, None),
        ({"x": "a" * 70_000}, "at most 65536 bytes"),
        ({"x": "a\x00b"}, "NUL"),
        ({"a\x00": 1}, "NUL"),
        (_nested(40), "nested more than 32"),
    ],
)
def test_it_bounds_free_json(value, problem):
    found = json_problem(value)
    assert (found is None) if problem is None else problem in found


def test_progress_json_has_its_own_smaller_bound():
    assert "at most 16384 bytes" in json_problem({"log": "x" * 20_000}, max_bytes=16_384)


@pytest.mark.parametrize(
    ("raw", "ok"), [("12", True), ("0", True), ("²", False), ("٣", False), ("-1", False), ("", False)]
)
def test_whole_numbers_are_ascii_digits(raw, ok):
    assert whole_number(raw) is ok


class _Counted(serializers.IntegerField):
    """An integer field that counts how often DRF validates it."""

    calls = 0

    def run_validation(self, data=empty):
        type(self).calls += 1
        return super().run_validation(data)


class _Thing(StrictSerializer):
    given = serializers.IntegerField(required=False)
    absent = _Counted(required=False)
    needed = serializers.IntegerField()
    defaulted = serializers.IntegerField(required=False, default=7)
    tags = serializers.ListField(child=serializers.CharField(), required=False)


def test_an_absent_optional_field_is_not_validated_only_to_be_skipped():
    _Counted.calls = 0
    data = _Thing(data=[{"given": 1, "needed": 2}] * 3, many=True)
    assert data.is_valid(), data.errors
    assert data.validated_data == [{"given": 1, "needed": 2, "defaulted": 7}] * 3
    assert _Counted.calls == 0
    assert _Thing(data={"given": 1, "needed": 2, "absent": 3}).is_valid() and _Counted.calls == 1


def test_absent_fields_still_say_what_they_must():
    data = _Thing(data={"given": 1})
    assert not data.is_valid() and list(data.errors) == ["needed"]
    unknown = _Thing(data={"needed": 1, "nope": 2})
    assert not unknown.is_valid() and "unknown field" in unknown.errors["nope"][0]


def test_form_input_keeps_drfs_own_reading_of_absent_fields():
    class Form(StrictSerializer):
        name = serializers.CharField()
        flag = serializers.BooleanField(required=False)  # an unticked box: absent from a form, so False

    data = Form(data=QueryDict("name=x"))
    assert data.is_valid(), data.errors
    assert data.validated_data == {"name": "x", "flag": False}
