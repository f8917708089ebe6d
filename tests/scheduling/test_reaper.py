"""Rescue by lease: stale jobs are stopped for sure, then requeued (attempt + 1) or failed."""

import subprocess
from datetime import timedelta

from django.utils import timezone

from gpus.models import Allocation
from scheduling import procs
from scheduling.models import Job
from scheduling.reaper import reap, reconcile_node
from scheduling.states import Status
from tests.factories import make_job
from tests.scheduling.helpers import dispatch


def go_stale(job, seconds=60):
    Job.objects.filter(pk=job.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=seconds))


def test_a_stale_job_is_requeued_with_its_gpus_freed(alice, node):
    job = dispatch(make_job(alice, max_attempts=3))
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
    job = dispatch(make_job(alice, max_attempts=1))
    go_stale(job)
    reap()
    job.refresh_from_db()
    assert job.status == Status.FAILED
    assert "attempts spent (1/1)" in job.transitions.last().reason
    assert not Allocation.objects.active().exists()


def test_a_stale_job_whose_cancel_was_requested_ends_cancelled(alice, node):
    job = dispatch(make_job(alice))
    Job.objects.filter(pk=job.pk).update(stop_request="cancel", stop_requested_at=timezone.now())
    go_stale(job)
    reap()
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED


def test_the_old_process_is_killed_before_the_job_is_requeued(alice, node):
    job = dispatch(make_job(alice))
    orphan = subprocess.Popen(["sleep", "600"], start_new_session=True)
    Job.objects.filter(pk=job.pk).update(
        status=Status.RUNNING,
        pid=orphan.pid,
        pid_start_time=procs.start_time(orphan.pid),
        boot_id=procs.boot_id(),
    )
    job.refresh_from_db()
    go_stale(job)
    reap()
    assert orphan.wait(timeout=5) is not None
    assert Job.objects.get(pk=job.pk).status == Status.PENDING


def test_a_recycled_pid_is_never_killed(alice, node):
    bystander = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        job = dispatch(make_job(alice))
        # Same pid, but a different start time: another process now owns that number.
        Job.objects.filter(pk=job.pk).update(
            status=Status.RUNNING, pid=bystander.pid, pid_start_time="1", boot_id=procs.boot_id()
        )
        job.refresh_from_db()
        go_stale(job)
        reap()
        assert bystander.poll() is None
        assert Job.objects.get(pk=job.pk).status == Status.PENDING
    finally:
        bystander.kill()
        bystander.wait()


def test_reconcile_at_node_start_requeues_jobs_whose_process_is_gone(alice, node):
    job = dispatch(make_job(alice))  # heartbeat is fresh, but no executor of this node runs yet
    assert reconcile_node(node.name) == 1
    job.refresh_from_db()
    assert (job.status, job.attempt) == (Status.PENDING, 2)
    assert "node restarted" in job.transitions.last().reason


def test_reconcile_leaves_a_live_heartbeating_process_alone(alice, node):
    survivor = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        job = dispatch(make_job(alice))
        Job.objects.filter(pk=job.pk).update(
            status=Status.RUNNING,
            pid=survivor.pid,
            pid_start_time=procs.start_time(survivor.pid),
            boot_id=procs.boot_id(),
            heartbeat_at=timezone.now(),
        )
        assert reconcile_node(node.name) == 0
        assert Job.objects.get(pk=job.pk).status == Status.RUNNING
        assert survivor.poll() is None
    finally:
        survivor.kill()
        survivor.wait()
