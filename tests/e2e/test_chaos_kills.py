"""The chaos harness's kills count only when they hit: a fault counted as made must have happened, or the
long run's "faults made/asked" says nothing (the full run of issue 10 counted 200 job kills, of which 2
killed a job: the others aimed at rows of dead processes, picked by a node's skewed clock)."""

import random
import subprocess
import sys
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling.models import Attempt
from scheduling.states import Status
from tests.e2e import chaos
from tests.e2e.conftest import alive
from tests.factories import make_job

pytestmark = [pytest.mark.processes, pytest.mark.django_db]


def _running(owner, pid: int, *, started_ago: float, skewed_by: float, duration_id: dict, seconds: float):
    """A running job with an open attempt of process `pid`, started `started_ago` seconds ago by the
    database's clock; its job row's started_at stamped by a node whose clock is `skewed_by` seconds off."""
    now = timezone.now()
    job = make_job(
        owner, status=Status.RUNNING, started_at=now - timedelta(seconds=started_ago - skewed_by), attempt=1
    )
    Attempt.objects.create(
        job=job, number=1, lease_token="t", pid=pid, started_at=now - timedelta(seconds=started_ago)
    )
    duration_id[job.pk] = seconds
    return job


def _sleeper() -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)


def test_a_job_kill_of_a_process_that_is_gone_is_not_a_fault_made(root):
    gone = _sleeper()
    gone.kill()
    gone.wait()
    durations = {}
    _running(root, gone.pid, started_ago=1, skewed_by=0, duration_id=durations, seconds=100)
    assert chaos._kill("job", None, random.Random(0), durations) is False


def test_a_job_kill_aims_by_the_database_clock_at_a_live_process(root):
    """The stale row (a dead process) looks, by its skewed node's clock, like the job with the most time
    left; the live one is hit instead, and the kill counts."""
    live, gone = _sleeper(), _sleeper()
    gone.kill()
    gone.wait()
    try:
        durations = {}
        _running(root, live.pid, started_ago=1, skewed_by=0, duration_id=durations, seconds=50)
        _running(root, gone.pid, started_ago=10, skewed_by=60, duration_id=durations, seconds=40)
        assert chaos._kill("job", None, random.Random(0), durations) is True
        assert live.wait(timeout=60) == -9
    finally:
        if alive(live.pid):
            live.kill()
        live.wait()


def test_kills_with_a_tally_hit_the_least_hit_job_and_none_past_the_cap(root):
    """The long run's kills spread over the jobs: the least hit running job is hit, and a job hit
    HIT_CAP times is not hit again (the kill is not made)."""
    first, second = _sleeper(), _sleeper()
    try:
        durations, hits = {}, Counter()
        hit = _running(root, first.pid, started_ago=1, skewed_by=0, duration_id=durations, seconds=100)
        fresh = _running(root, second.pid, started_ago=1, skewed_by=0, duration_id=durations, seconds=100)
        hits[hit.pk] = chaos.HIT_CAP - 1
        assert chaos._kill("job", None, random.Random(0), durations, hits) is True
        assert second.wait(timeout=60) == -9 and alive(first.pid)  # the one never hit
        assert hits == {hit.pk: chaos.HIT_CAP - 1, fresh.pk: 1}
        fresh.delete()
        assert chaos._kill("job", None, random.Random(0), durations, hits) is True  # the least hit left
        assert first.wait(timeout=60) == -9
        assert hits[hit.pk] == chaos.HIT_CAP
        third = _sleeper()
        try:
            Attempt.objects.filter(job=hit).update(pid=third.pid)  # its re-run, hit HIT_CAP times
            assert chaos._kill("job", None, random.Random(0), durations, hits) is False
            assert alive(third.pid)
        finally:
            third.kill()
            third.wait()
    finally:
        for process in (first, second):
            if alive(process.pid):
                process.kill()
            process.wait()
