"""Execution under faults: retries with backoff by exit code, the watchdog for stalled jobs, and the
checkpoint folder that survives attempts. Real child processes; the executor runs in this process."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gpus.models import Allocation
from scheduling import executor, policies
from scheduling.models import Event, Job, PolicyType
from scheduling.policies import retry_delay, set_policy
from scheduling.states import Status
from scheduling.tick import tick
from tests.factories import make_job
from tests.scheduling.helpers import PY, dispatch

# A job that fails its first attempt after leaving a checkpoint, and resumes from it on the next.
RESUMES = (
    "import os, sys, pathlib; "
    "ckpt = pathlib.Path(os.environ['GPUQ_CHECKPOINT_DIR']) / 'step'; "
    "print('attempt', os.environ['GPUQ_ATTEMPT'], 'found', ckpt.read_text() if ckpt.exists() else None); "
    "ckpt.write_text('42'); "
    "sys.exit(0 if os.environ['GPUQ_ATTEMPT'] != '1' else 3)"
)


def run(job: Job) -> Job:
    """Dispatch through a real tick and run the attempt to its end."""
    job = dispatch(job)
    executor.run_job(job.pk, job.lease_token)
    job.refresh_from_db()
    return job


def history(job):
    return [(t.from_status, t.to_status, t.reason) for t in job.transitions.order_by("id")]


def test_without_a_retry_policy_a_failure_is_final(alice, node):
    job = run(make_job(alice, argv=[PY, "-c", RESUMES]))
    assert (job.status, job.attempt, job.faults) == (Status.FAILED, 1, 0)


def test_a_retried_exit_code_runs_again_and_resumes_from_its_checkpoint(alice, node):
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [3], "backoff_seconds": 0})
    job = run(make_job(alice, argv=[PY, "-c", RESUMES], max_attempts=3))
    assert (job.status, job.attempt, job.faults, job.exit_code) == (Status.PENDING, 2, 1, 3)
    assert not Allocation.objects.active().exists()
    assert history(job)[-1] == ("running", "pending", "exit code 3; retry 2 of up to 3, in 0 s")
    job = run(job)
    assert (job.status, job.attempt) == (Status.COMPLETED, 2)
    log = open(job.log_path).read()
    assert "attempt 1 found None" in log and "attempt 2 found 42" in log


def test_the_retry_count_counts_failures_not_runs_that_were_no_fault(alice, node):
    """A job preempted or requeued without fault has run more often than it has failed: its retry is
    counted as the attempts limit counts (failures), never "retry 6 of up to 3"."""
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [3], "backoff_seconds": 0})
    job = run(make_job(alice, argv=[PY, "-c", "raise SystemExit(3)"], max_attempts=3, attempt=5))
    assert (job.status, job.attempt, job.faults) == (Status.PENDING, 6, 1)
    assert history(job)[-1] == ("running", "pending", "exit code 3; retry 2 of up to 3, in 0 s")


def test_exit_codes_not_listed_do_not_retry(alice, node):
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [137, -9], "backoff_seconds": 0})
    job = run(make_job(alice, argv=[PY, "-c", "raise SystemExit(3)"]))
    assert (job.status, job.exit_code) == (Status.FAILED, 3)


def test_retries_stop_when_attempts_are_spent(alice, node):
    set_policy(PolicyType.RETRY, enabled=True, config={"backoff_seconds": 0})  # any non-zero code
    job = make_job(alice, argv=[PY, "-c", "raise SystemExit(5)"], max_attempts=2)
    job = run(job)
    assert job.status == Status.PENDING
    job = run(job)
    assert (job.status, job.attempt, job.faults) == (Status.FAILED, 2, 1)
    assert history(job)[-1] == ("running", "failed", "exit code 5")


def test_a_retry_with_backoff_waits_scheduled_then_runs(alice, node):
    set_policy(PolicyType.RETRY, enabled=True, config={"backoff_seconds": 60})
    before = timezone.now()
    job = run(make_job(alice, argv=[PY, "-c", RESUMES]))
    assert (job.status, job.wait_reason) == (Status.SCHEDULED, "retry")
    assert before + timedelta(seconds=59) < job.start_after < timezone.now() + timedelta(seconds=61)
    tick()
    job.refresh_from_db()
    assert job.status == Status.SCHEDULED  # not before its time
    tick(now=job.start_after + timedelta(seconds=1))
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED


def test_the_backoff_grows_with_each_failure_up_to_a_ceiling():
    configs = {PolicyType.RETRY: policies.validate_config(PolicyType.RETRY, {"max_backoff_seconds": 100})}
    delays = [retry_delay(configs, cause="exit_code", exit_code=1, failures=n) for n in (1, 2, 3, 4)]
    assert delays == [30, 60, 100, 100]
    assert retry_delay(configs, cause="exit_code", exit_code=0, failures=1) is None
    assert retry_delay(configs, cause="time_limit", exit_code=None, failures=1) is None  # off by default
    assert retry_delay(configs, cause="stalled", exit_code=None, failures=1) == 30
    assert retry_delay({}, cause="exit_code", exit_code=1, failures=1) is None


def test_a_retry_policy_with_a_bad_config_is_refused(root):
    from tests.conftest import api_for

    response = api_for(root).post(
        "/api/v1/policies", {"type": "retry", "config": {"exit_codes": "some"}}, format="json"
    )
    assert response.status_code == 400 and "exit_codes" in str(response.json()["config"])


# --- the watchdog ---------------------------------------------------------------------------------

SILENT_AFTER_HELLO = "import time; print('hello', flush=True); time.sleep(600)"


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_ends_a_job_whose_output_stalls(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    job = run(make_job(alice, argv=[PY, "-c", SILENT_AFTER_HELLO], stall_timeout_seconds=1))
    assert (job.status, job.transitions.last().reason) == (Status.FAILED, "stalled")
    assert job.error == "watchdog: no output or progress for 1 s"
    assert (job.finished_at - job.started_at).total_seconds() < 5
    # ... and says so to its owner (a `stalled` notice, which notifications deliver).
    (notice,) = Event.objects.filter(job_id=job.pk, data__notice="stalled")
    assert notice.data["reason"] == job.error


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    "sign_of_life",
    [
        "print(i, flush=True)",
        "open(os.environ['GPUQ_PROGRESS_FILE'], 'w').write(json.dumps({'fraction': i / 8}))",
    ],
    ids=["output", "progress"],
)
def test_the_watchdog_spares_a_job_that_shows_signs_of_life(alice, node, sign_of_life):
    code = f"import json, os, time\nfor i in range(8):\n    {sign_of_life}\n    time.sleep(0.4)"
    job = run(make_job(alice, argv=[PY, "-c", code], stall_timeout_seconds=1))
    assert job.status == Status.COMPLETED, job.error


@pytest.mark.django_db(transaction=True)
def test_the_watchdog_policy_applies_to_every_job_and_stalled_jobs_retry(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    set_policy(PolicyType.WATCHDOG, enabled=True, config={"stall_minutes": 1 / 60})
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [], "backoff_seconds": 0})
    job = run(make_job(alice, argv=[PY, "-c", SILENT_AFTER_HELLO], max_attempts=2))
    # Requeued; the tick that the transition requests on commit may already have dispatched it again.
    assert job.status in (Status.PENDING, Status.DISPATCHED) and job.attempt == 2
    assert job.transitions.filter(
        to_status=Status.PENDING, reason="stalled; retry 2 of up to 2, in 0 s"
    ).exists()
    job = run(job)
    assert (job.status, job.error) == (Status.FAILED, "watchdog: no output or progress for 1 s")


@pytest.mark.django_db(transaction=True)
def test_a_time_limit_retries_only_when_the_policy_says_so(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    set_policy(PolicyType.RETRY, enabled=True, config={"time_limit": True, "backoff_seconds": 0})
    job = run(make_job(alice, argv=["sleep", "600"], time_limit_seconds=1))
    assert job.status in (Status.PENDING, Status.DISPATCHED) and job.attempt == 2
    assert job.transitions.filter(to_status=Status.PENDING, reason__startswith="time_limit; retry").exists()
