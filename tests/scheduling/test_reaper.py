"""Rescue by lease: stale jobs are stopped for sure, then requeued (attempt + 1) or failed."""

import subprocess
from datetime import timedelta

from django.utils import timezone

from gpus.models import Allocation
from scheduling import procs
from scheduling.models import Attempt, Job
from scheduling.reaper import reap, reconcile_node
from scheduling.states import Status
from scheduling.transitions import transition
from tests.factories import make_job
from tests.scheduling.helpers import dispatch


def go_stale(job, seconds=60, **fields):
    """Make the job's open attempt look claimed and silent for `seconds` (and set more of its fields)."""
    long_ago = timezone.now() - timedelta(seconds=seconds)
    Attempt.objects.filter(job=job, ended_at__isnull=True).update(
        started_at=long_ago, heartbeat_at=long_ago, **fields
    )


def run_it(job, **fields):
    """The dispatched job as its executor would leave it once running (without running anything)."""
    transition(job, Status.RUNNING, token=job.lease_token, lease=fields)
    job.refresh_from_db()
    return job


def test_a_stale_job_is_requeued_with_its_gpus_freed(alice, node):
    job = run_it(dispatch(make_job(alice, max_attempts=3)))
    go_stale(job)
    assert reap() == 1
    job.refresh_from_db()
    assert (job.status, job.attempt, job.lease_token) == (Status.PENDING, 2, "")
    assert "no heartbeat" in job.transitions.last().reason
    assert not Allocation.objects.active().exists()


def test_a_fresh_job_is_left_alone(alice, node):
    job = dispatch(make_job(alice))
    assert reap() == 0
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED


def test_a_stale_job_with_no_attempts_left_fails(alice, node):
    job = run_it(dispatch(make_job(alice, max_attempts=1)))
    go_stale(job)
    reap()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "attempts spent (1/1)" in job.transitions.last().reason
    assert job.faults == 1  # the count agrees with the reason (it said 1/1 while the row kept 0)


def test_attempt_rows_are_the_faults_plus_the_lost_dispatches_that_were_no_fault(alice, node):
    """Issue 10's long run: jobs failed with "attempts spent (20/20)" had faults=19 and 23-24 attempt
    rows. The rows are every fault plus every dispatch lost before its executor claimed it (never ran, so
    no fault); the job's count now includes the fault that spent the last attempt."""
    job = make_job(alice, max_attempts=3)
    for _ in range(2):  # two dispatches nobody claimed: requeued, not counted
        dispatch(job)
        Attempt.objects.filter(job=job, ended_at__isnull=True).update(
            dispatched_at=timezone.now() - timedelta(hours=1)
        )
        assert reap() == 1
        job.refresh_from_db()
    for _ in range(3):  # three executors lost: the third spends the attempts
        run_it(dispatch(job))
        go_stale(job)
        assert reap() == 1
        job.refresh_from_db()
    reasons = [a.reason.split(":")[0] for a in job.attempts.order_by("number")]
    assert reasons == ["dispatch lost"] * 2 + ["executor lost"] * 3
    assert (job.status, job.faults) == (Status.FAILED, 3)
    assert "attempts spent (3/3)" in job.transitions.last().reason
    assert not Allocation.objects.active().exists()


def test_a_stale_job_whose_cancel_was_requested_ends_cancelled(alice, node):
    job = run_it(dispatch(make_job(alice)))
    Job.objects.filter(pk=job.pk).update(stop_request="cancel", stop_requested_at=timezone.now())
    go_stale(job)
    reap()
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def test_the_owning_node_kills_the_old_process_after_claiming_and_before_freeing_the_gpus(alice, node):
    job = run_it(dispatch(make_job(alice)))
    orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
    go_stale(job, pid=orphan.pid, pid_start_time=procs.start_time(orphan.pid), boot_id=procs.boot_id())
    assert reap(node_name=node.name) == 1
    assert orphan.wait(timeout=5) == -9  # SIGKILL at once: no grace wait inside the node's loop
    assert Job.objects.get(pk=job.pk).status == Status.PENDING


def test_another_node_never_touches_the_process_it_only_judges_the_heartbeat(alice, node):
    job = run_it(dispatch(make_job(alice)))
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        go_stale(
            job, pid=bystander.pid, pid_start_time=procs.start_time(bystander.pid), boot_id=procs.boot_id()
        )
        assert reap(node_name="some-other-node") == 1
        assert bystander.poll() is None
        assert Job.objects.get(pk=job.pk).status == Status.PENDING
    finally:
        bystander.kill()
        bystander.wait()


def test_a_recycled_pid_is_never_killed(alice, node):
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        job = run_it(dispatch(make_job(alice)))
        # Same pid, but a different start time: another process now owns that number.
        go_stale(job, pid=bystander.pid, pid_start_time="1", boot_id=procs.boot_id())
        reap(node_name=node.name)
        assert bystander.poll() is None
        assert Job.objects.get(pk=job.pk).status == Status.PENDING
    finally:
        bystander.kill()
        bystander.wait()


def test_reconcile_at_node_start_requeues_jobs_whose_process_is_gone(alice, node):
    job = run_it(dispatch(make_job(alice)))  # heartbeat is fresh, but no executor of this node runs yet
    assert reconcile_node(node.name) == 1
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Status.PENDING, 2)
    assert "node restarted" in job.transitions.last().reason


def test_reconcile_leaves_a_live_heartbeating_process_alone(alice, node):
    survivor = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        job = dispatch(make_job(alice))
        run_it(job, pid=survivor.pid, pid_start_time=procs.start_time(survivor.pid), boot_id=procs.boot_id())
        assert reconcile_node(node.name) == 0
        assert Job.objects.get(pk=job.pk).status == Status.RUNNING
        assert survivor.poll() is None
    finally:
        survivor.kill()
        survivor.wait()
