"""Attempts and leases under real faults, with the executor running in this process (real child
processes, real signals, a real full device); the database faults are made where the executor meets
them."""

import errno
import io
import logging
import os
import subprocess
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import OperationalError, connection
from django.utils import timezone

from gpus.models import Allocation
from scheduling import executor, procs, tick
from scheduling.models import Attempt
from scheduling.reaper import reap, reconcile_node
from scheduling.states import Status
from scheduling.transitions import transition
from tests.conftest import job_writable, wait_for
from tests.factories import make_job
from tests.scheduling.helpers import PY, dispatch, run_in_thread, running_attempt

pytestmark = pytest.mark.django_db(transaction=True)
ON_POSTGRESQL = settings.DATABASES["default"]["ENGINE"].endswith("postgresql")


def waits_for(marker, runs):
    """A job that records each run, then waits until `marker` exists."""
    code = (
        "import os, sys, time; open(sys.argv[2], 'a').write('run\\n'); "
        "[time.sleep(0.05) for _ in iter(lambda: os.path.exists(sys.argv[1]), True)]"
    )
    return [PY, "-c", code, str(marker), str(runs)]


def attempts_of(job):
    return [(a.number, a.outcome, a.reason) for a in Attempt.objects.filter(job=job).order_by("id")]


def test_a_completed_job_is_recorded_after_a_transient_error_on_its_final_write(
    alice, node, tmp_path, monkeypatch
):
    runs = job_writable(tmp_path / "out") / "runs"
    job = dispatch(make_job(alice, argv=[PY, "-c", f"open({str(runs)!r}, 'a').write('run\\n')"]))
    real, failures = executor.transition, []

    def flaky(job, to, **kwargs):
        if to == Status.COMPLETED and not failures:
            failures.append(to)
            raise OperationalError("database is locked")
        return real(job, to, **kwargs)

    monkeypatch.setattr(executor, "transition", flaky)
    assert executor.run_job(job.pk, job.lease_token) == "completed"
    assert failures == [Status.COMPLETED]
    job.refresh_from_db()
    assert (job.status, job.attempt, job.faults) == (Status.COMPLETED, 1, 0)
    assert attempts_of(job) == [(1, Status.COMPLETED, "exit code 0")]
    assert reap() == 0
    assert runs.read_text() == "run\n"
    assert not Allocation.objects.active().exists()


def test_a_lost_dispatch_is_requeued_without_counting_a_fault(alice, node, settings, tmp_path):
    marker = job_writable(tmp_path / "out") / "ran"
    job = dispatch(make_job(alice, argv=["touch", str(marker)], max_attempts=1))
    token = job.lease_token
    long_ago = timezone.now() - timedelta(seconds=settings.GPUQ_DISPATCH_TIMEOUT_SECONDS + 1)
    Attempt.objects.filter(job=job).update(dispatched_at=long_ago)
    assert reap() == 1
    job.refresh_from_db()
    assert (job.status, job.attempt, job.faults) in [
        (Status.PENDING, 2, 0),
        (Status.DISPATCHED, 2, 0),  # the tick the requeue asked for placed it again
    ]
    (number, outcome, reason), *_ = attempts_of(job)
    assert (number, outcome) == (1, Status.PENDING) and reason.startswith("dispatch lost")
    assert executor.run_job(job.pk, token) == "skipped"  # the lost task, delivered late, runs nothing
    assert not marker.exists()


def test_a_late_heartbeat_is_left_to_its_executor_not_killed_by_the_reaper(alice, node, settings, tmp_path):
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    job = dispatch(make_job(alice, argv=waits_for(marker, runs)))
    thread, result = run_in_thread(job)
    attempt = wait_for(lambda: running_attempt(job.pk), message="the job to run")
    wait_for(runs.exists, message="the job to start its work")
    # Its heartbeat is late by more than a lease, but the executor has not had time to fence and stop
    # the job: the reaper must neither stop it nor take it over.
    late = timezone.now() - timedelta(seconds=settings.GPUQ_LEASE_SECONDS + 0.5)
    Attempt.objects.filter(pk=attempt.pk).update(heartbeat_at=late)
    assert reap(node_name=node.name) == 0
    assert procs.group_alive(attempt.pid)
    marker.touch()
    thread.join(timeout=30)
    assert result == ["completed"]
    assert attempts_of(job) == [(1, Status.COMPLETED, "exit code 0")]
    assert runs.read_text() == "run\n"


def test_heartbeats_carry_the_databases_clock_not_the_machines(alice, node, tmp_path, monkeypatch):
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    slow = SimpleNamespace(now=lambda: timezone.now() - timedelta(seconds=120))  # a machine 2 min behind
    monkeypatch.setattr(executor, "timezone", slow)
    job = dispatch(make_job(alice, argv=waits_for(marker, runs)))
    thread, result = run_in_thread(job)
    attempt = wait_for(lambda: running_attempt(job.pk), message="the job to run")
    seen = attempt.heartbeat_at
    wait_for(
        lambda: Attempt.objects.get(pk=attempt.pk).heartbeat_at > seen, message="a heartbeat after the claim"
    )
    assert reap() == 0  # another node, with a right clock, sees a live lease
    marker.touch()
    thread.join(timeout=30)
    assert result == ["completed"]
    assert runs.read_text() == "run\n"


def test_a_job_killed_by_sigkill_after_its_grace_records_the_signal(alice, node, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"
    job = dispatch(make_job(alice, argv=[PY, "-c", code], time_limit_seconds=1, max_attempts=1))
    assert executor.run_job(job.pk, job.lease_token) == "failed"
    job.refresh_from_db()
    assert job.exit_code == -9
    attempt = Attempt.objects.get(job=job)
    assert (attempt.exit_code, attempt.exit_signal, attempt.outcome) == (None, 9, Status.FAILED)


@pytest.fixture
def full_disk(tmp_path):
    """A folder on a real, full file system: a 64 KiB tmpfs, filled up. Where mounting is not allowed
    (a container without CAP_SYS_ADMIN) the folder's writes fail with ENOSPC through a fault injection
    point instead: the executor's own `open`."""
    mount = tmp_path / "full"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if mounted.returncode == 0:
        with pytest.raises(OSError, match="No space left"):
            with open(mount / "filler", "wb") as filler:
                while True:
                    filler.write(b"x" * 4096)
                    filler.flush()
        try:
            yield mount, None
        finally:
            subprocess.run(["umount", "-l", str(mount)], check=True)
    else:
        yield mount, mount


class FullFile(io.FileIO):
    def write(self, data):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_full_log_disk_fails_the_attempt_at_once_with_the_reason(
    alice, node, settings, full_disk, monkeypatch
):
    folder, injected = full_disk
    settings.GPUQ_LOG_DIR = folder
    if injected:
        monkeypatch.setattr(executor, "open", lambda fd, *args, **kwargs: FullFile(fd, "w"), raising=False)
    job = dispatch(make_job(alice, argv=["true"]))
    assert executor.run_job(job.pk, job.lease_token) == "failed"
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "No space left on device" in job.error
    ((number, outcome, reason),) = attempts_of(job)
    assert (number, outcome) == (1, Status.FAILED) and "No space left on device" in reason
    assert not Allocation.objects.active().exists()


def test_a_database_that_stops_answering_gets_the_job_stopped_before_its_lease_can_be_taken(
    alice, node, tmp_path, monkeypatch
):
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    job = dispatch(make_job(alice, argv=waits_for(marker, runs)))
    hang, real, calls = threading.Event(), executor.Execution._heartbeat, []

    def silent(self):
        calls.append(self)
        if len(calls) > 1 and runs.exists():  # recorded and at work: the database never answers again
            hang.wait(60)
        return real(self)

    monkeypatch.setattr(executor.Execution, "_heartbeat", silent)
    thread, result = run_in_thread(job)
    attempt = wait_for(lambda: running_attempt(job.pk), message="the job to run")
    wait_for(lambda: not procs.group_alive(attempt.pid), timeout=30, message="the job to be stopped")
    assert reap() == 0  # stopped while its lease still stands: nobody could have started it again
    assert Attempt.objects.get(pk=attempt.pk).ended_at is None
    hang.set()
    thread.join(timeout=30)
    assert result == ["lease lost"]


def test_a_tick_whose_now_is_old_starts_the_lease_when_it_dispatches(alice, node, settings):
    """A tick that took its `now` long ago (it waited for the ticker's lock, or planned a big queue) still
    gives its dispatch a whole lease: the lease counts from the database's clock at dispatch and claim."""
    job = make_job(alice, argv=["true"], max_attempts=1)
    stale = timezone.now() - timedelta(
        seconds=settings.GPUQ_LEASE_SECONDS + settings.GPUQ_DISPATCH_TIMEOUT_SECONDS + 5
    )
    tick.tick(now=stale)
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED
    assert reap() == 0  # its lease starts when it is dispatched and claimed, not at the tick's old `now`
    job.refresh_from_db()
    assert (job.status, job.faults) == (Status.DISPATCHED, 0)


class Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record):
        self.messages.append(record.getMessage())


@pytest.mark.skipif(
    "os.environ.get('DATABASE_URL', '').startswith('sqlite') or not os.environ.get('DATABASE_URL')"
)
def test_a_dropped_connection_does_not_kill_a_healthy_job(alice, node, tmp_path):
    """pg_terminate_backend of the executor's connection: it reconnects, logs the outage once, and the
    job runs to its end (PostgreSQL only: CI runs this file on both databases)."""
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    job = dispatch(make_job(alice, argv=waits_for(marker, runs)))
    collect = Collect()
    logging.getLogger("gpuq.executor").addHandler(collect)
    try:
        thread, result = run_in_thread(job)
        attempt = wait_for(lambda: running_attempt(job.pk), message="the job to run")
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            cursor.execute("SELECT now()")
            (killed_at,) = cursor.fetchone()
        wait_for(
            lambda: Attempt.objects.get(pk=attempt.pk).heartbeat_at > killed_at,
            timeout=30,
            message="a heartbeat on a new connection",
        )
        marker.touch()
        thread.join(timeout=30)
    finally:
        logging.getLogger("gpuq.executor").removeHandler(collect)
    assert result == ["completed"]
    assert attempts_of(job) == [(1, Status.COMPLETED, "exit code 0")]
    assert len([m for m in collect.messages if "database unreachable" in m]) <= 1
    assert not [m for m in collect.messages if "lost its lease" in m]


def test_an_outcome_kept_on_disk_is_recorded_at_node_start_instead_of_a_rerun(alice, node, settings):
    job = dispatch(make_job(alice, argv=["true"]))
    transition(job, Status.RUNNING, token=job.lease_token, lease={"boot_id": procs.boot_id()})
    # Its executor saw the job exit 0, kept the outcome and died before the database came back.
    settings.GPUQ_LOG_DIR.mkdir(parents=True, exist_ok=True)
    executor.keep_outcome(
        job.pk, job.lease_token, executor.Outcome(Status.COMPLETED, "exit code 0", exit_code=0)
    )
    assert reconcile_node(node.name) == 0
    job.refresh_from_db()
    assert (job.status, job.attempt, job.faults) == (Status.COMPLETED, 1, 0)
    assert attempts_of(job) == [(1, Status.COMPLETED, "exit code 0")]
    assert not executor.outcome_file(job.pk, job.lease_token).exists()
