"""One wait-reason vocabulary (issue 12): defined in scheduling.reasons, used by planner, models, code."""

import re
from pathlib import Path

from scheduling import planner
from scheduling.models import WaitReason
from scheduling.reasons import LABELS, Reason

SCHEDULING = Path(__file__).resolve().parents[2] / "scheduling"


def test_the_planner_and_the_model_share_one_vocabulary():
    assert planner.Reason is Reason
    assert WaitReason.values == [r.value for r in Reason]
    assert set(LABELS) == set(Reason)


def test_what_the_server_sends_is_in_the_vocabulary():
    assert {"retry", "batching", "batch", "paused", "begin_time", "approval"} <= set(WaitReason.values)


def test_no_code_writes_a_wait_reason_as_a_bare_string():
    bare = re.compile(r"""wait_reason["']?\s*[=:]\s*["'][a-z]""")
    found = [
        f"{path.name}:{n}"
        for path in SCHEDULING.rglob("*.py")
        if "migrations" not in path.parts
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if bare.search(line)
    ]
    assert found == []
