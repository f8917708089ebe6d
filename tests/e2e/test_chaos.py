"""The chaos test at small scale, on SQLite (one machine): SIGKILLs only. On PostgreSQL
tests/e2e/test_faults.py runs every fault at once, these kills included; benchmarks/chaos.py runs it long."""

import pytest

from tests.conftest import child_env
from tests.e2e import chaos
from tests.e2e.conftest import on_postgresql

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(on_postgresql(), reason="PostgreSQL: tests/e2e/test_faults.py makes these and more"),
]


def test_random_kills_lose_no_job_never_run_one_twice_at_once_and_leak_no_gpu(root, tmp_path):
    report = chaos.run(user=root, jobs=16, kills=10, workdir=tmp_path / "chaos", env=child_env(), seed=1)
    print(report)
    assert report.ok, report
    assert sum(report.kills.values()) == 10
    assert report.statuses["completed"] == 16  # every kill is survivable: retries and requeues finish all
    assert report.attempts > 16  # the kills did cost attempts, so the test did test something
