"""The executor with real child processes and real signals (the executor runs in this process)."""

import json
import os
import time

import pytest

from gpus.models import Allocation
from scheduling import executor, procs
from scheduling.models import Event, Job
from scheduling.services import job_cancel
from scheduling.states import Status
from tests.conftest import job_writable, wait_for
from tests.factories import make_job
from tests.scheduling.helpers import PY, dispatch, run_in_thread, running_attempt


def history(job):
    return [(t.from_status, t.to_status) for t in job.transitions.order_by("id")]


def log_text(job):
    job.refresh_from_db()
    with open(job.log_path) as handle:
        return handle.read()


def test_a_job_runs_on_its_gpu_and_completes(alice, node):
    job = make_job(alice, argv=[PY, "-c", "import os; print('gpu', os.environ['CUDA_VISIBLE_DEVICES'])"])
    job.transitions.create(from_status="", to_status=Status.PENDING)
    job = dispatch(job)
    assert executor.run_job(job.pk, job.lease_token) == "completed"
    job.refresh_from_db()
    assert (job.status, job.exit_code) == (Status.COMPLETED, 0)
    assert "gpu 0\n" in log_text(job)
    assert history(job) == [
        ("", "pending"),
        ("pending", "dispatched"),
        ("dispatched", "running"),
        ("running", "completed"),
    ]
    assert not Allocation.objects.active().exists()
    assert job.started_at <= job.finished_at


def test_a_non_zero_exit_fails_the_job_with_its_code(alice, node):
    job = dispatch(make_job(alice, argv=[PY, "-c", "import sys; sys.exit(3)"]))
    assert executor.run_job(job.pk, job.lease_token) == "failed"
    job.refresh_from_db()
    assert (job.status, job.exit_code, job.error) == (Status.FAILED, 3, "exit code 3")
    assert not Allocation.objects.active().exists()


def test_a_duplicate_delivery_runs_nothing(alice, node, tmp_path):
    marker = job_writable(tmp_path / "out") / "runs"
    job = dispatch(make_job(alice, argv=[PY, "-c", f"open({str(marker)!r}, 'a').write('run\\n')"]))
    assert executor.run_job(job.pk, job.lease_token) == "completed"
    assert executor.run_job(job.pk, job.lease_token) == "skipped"
    assert marker.read_text() == "run\n"


def test_a_stale_token_runs_nothing(alice, node, tmp_path):
    marker = tmp_path / "ran"
    job = dispatch(make_job(alice, argv=["touch", str(marker)]))
    assert executor.run_job(job.pk, "not-the-token") == "skipped"
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED
    assert not marker.exists()


def test_the_job_sees_an_allow_listed_environment_without_the_servers_secrets(alice, node, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "server-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:password@db/gpuq")
    code = "import json, os; print(json.dumps(dict(os.environ)))"
    job = dispatch(make_job(alice, argv=[PY, "-c", code], env={"MY_SETTING": "42"}))
    executor.run_job(job.pk, job.lease_token)
    seen = json.loads(log_text(job).splitlines()[1])
    assert "SECRET_KEY" not in seen and "DATABASE_URL" not in seen
    assert seen["MY_SETTING"] == "42"
    assert seen["GPUQ_JOB_ID"] == str(job.pk) and seen["GPUQ_ATTEMPT"] == "1"
    assert seen["CUDA_VISIBLE_DEVICES"] == "0"


def test_argv_is_never_shell_text(alice, node):
    job = dispatch(make_job(alice, argv=["echo", "$HOME; echo injected"]))
    executor.run_job(job.pk, job.lease_token)
    assert "$HOME; echo injected\n" in log_text(job)


def test_a_missing_program_fails_with_a_clear_error(alice, node):
    job = dispatch(make_job(alice, argv=["/no/such/program"]))
    assert executor.run_job(job.pk, job.lease_token) == "failed"
    job.refresh_from_db()
    assert "could not start" in job.error and "/no/such/program" in job.error
    assert not Allocation.objects.active().exists()


@pytest.mark.parametrize(
    ("message", "stored"),
    [
        ("'epoch 1'", {"fraction": 0.5, "message": "epoch 1"}),
        # Over GPUQ_PROGRESS_MAX_BYTES: a reason is stored, never the file.
        (
            "'x' * 100000",
            {"rejected": "the progress file is over 1024 bytes (GPUQ_PROGRESS_MAX_BYTES); write less"},
        ),
    ],
    ids=["stored", "oversize"],
)
def test_progress_written_by_the_job_is_stored_within_its_limit(alice, node, settings, message, stored):
    settings.GPUQ_PROGRESS_MAX_BYTES = 1024
    code = (
        "import json, os; "
        f"open(os.environ['GPUQ_PROGRESS_FILE'], 'w').write(json.dumps({{'fraction': 0.5, 'message': {message}}}))"
    )
    job = dispatch(make_job(alice, argv=[PY, "-c", code]))
    executor.run_job(job.pk, job.lease_token)
    job.refresh_from_db()
    assert job.status == Status.COMPLETED and job.progress == stored
    events = Event.objects.filter(kind=Event.Kind.PROGRESS, job_id=job.pk)
    assert all(len(json.dumps(event.data)) < 1024 for event in events)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ignores_sigterm", [False, True], ids=["polite", "ignores-sigterm"])
def test_cancelling_a_running_job_stops_its_process_group_and_frees_its_gpu(
    alice, node, ignores_sigterm, settings
):
    settings.GPUQ_KILL_GRACE_SECONDS = 1.0
    # The job starts a grandchild so that we can check the whole group goes, not just the leader.
    code = (
        "import signal, subprocess, sys, time; "
        + ("signal.signal(signal.SIGTERM, signal.SIG_IGN); " if ignores_sigterm else "")
        + "subprocess.Popen(['sleep', '600']); time.sleep(600)"
    )
    job = dispatch(make_job(alice, argv=[PY, "-c", code]))
    thread, result = run_in_thread(job)
    pgid = wait_for(lambda: running_attempt(job.pk), message="the job to run").pid
    time.sleep(0.3)  # let the grandchild start
    asked = time.monotonic()
    job_cancel(job=job, user=alice)
    thread.join(timeout=10)
    took = time.monotonic() - asked
    assert result == ["cancelled"]
    assert took < 1.0 + 1.5  # within the grace period (plus polling)
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    assert job.transitions.last().triggered_by == alice
    assert not procs.group_alive(pgid)
    assert not Allocation.objects.active().exists()


@pytest.mark.django_db(transaction=True)
def test_the_time_limit_ends_a_job(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    job = dispatch(make_job(alice, argv=["sleep", "600"], time_limit_seconds=1))
    thread, result = run_in_thread(job)
    thread.join(timeout=10)
    job.refresh_from_db()
    assert result == ["failed"]
    assert job.status == Status.FAILED
    assert job.transitions.last().reason == "time_limit"
    assert "time limit" in job.error


@pytest.mark.django_db(transaction=True)
def test_an_attempt_that_lost_its_lease_stops_and_records_nothing(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    job = dispatch(make_job(alice, argv=["sleep", "600"]))
    thread, result = run_in_thread(job)
    pid = wait_for(lambda: running_attempt(job.pk), message="the job to run").pid
    # Someone else (the reaper, say) took the job over: its token changed.
    Job.objects.filter(pk=job.pk).update(lease_token="another-attempt")
    thread.join(timeout=10)
    assert result == ["lease lost"]
    assert not procs.group_alive(pid)
    job.refresh_from_db()
    assert job.status == Status.RUNNING  # the new owner decides, not this attempt
    assert os.path.exists(job.log_path)
