"""The chaos test at small scale (benchmarks/chaos.py runs it larger by hand)."""

import pytest

from tests.conftest import child_env
from tests.e2e import chaos

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_random_kills_lose_no_job_never_run_one_twice_at_once_and_leak_no_gpu(root, tmp_path):
    report = chaos.run(user=root, jobs=16, kills=10, workdir=tmp_path / "chaos", env=child_env(), seed=1)
    print(report)
    assert report.ok, report
    assert sum(report.kills.values()) == 10
    assert report.statuses["completed"] == 16  # every kill is survivable: retries and requeues finish all
    assert report.attempts > 16  # the kills did cost attempts, so the test did test something
