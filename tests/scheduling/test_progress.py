"""Job progress (GPUQ_PROGRESS_FILE) is bounded: an oversize or too deeply nested file is stored as a
short reason, never whole, and never stops the executor (a real job's oversize file: test_executor)."""

import pytest

from scheduling.progress import parse


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, None),
        (b'{"fraction": 0.5}', {"fraction": 0.5}),
        (b"0.5", {"value": 0.5}),
        (b"{half written", None),
        (b"null", None),
    ],
)
def test_a_progress_file_within_the_limit_is_read_as_before(raw, expected):
    assert parse(raw, 1024) == expected


def test_a_progress_file_over_the_limit_is_a_reason_naming_the_setting():
    progress = parse(b'{"message": "' + b"x" * 2000 + b'"}', 1024)
    assert progress == {"rejected": progress["rejected"]}
    assert "GPUQ_PROGRESS_MAX_BYTES" in progress["rejected"] and "1024" in progress["rejected"]


def test_a_deeply_nested_progress_file_is_a_reason_not_a_crash():
    assert "nested" in parse(b"[" * 5000 + b"]" * 5000, 16384)["rejected"]
