"""The state machine: every (from, to) pair, through the one door, and a race for the same job."""

import threading

import pytest
from django.db import connection

from gpus.models import Allocation, Gpu
from scheduling.models import Job, JobStateTransition
from scheduling.states import ALLOWED, HOLDS_GPUS, TERMINAL, Status, is_allowed
from scheduling.transitions import InvalidTransition, TransitionConflict, transition
from tests.factories import make_job

PAIRS = [(a, b) for a in Status for b in Status]


def test_terminal_statuses_have_no_way_out():
    assert all(not ALLOWED[status] for status in TERMINAL)
    assert all(ALLOWED[status] for status in Status if status not in TERMINAL)


def test_every_non_terminal_status_can_be_cancelled():
    assert all(is_allowed(status, Status.CANCELLED) for status in Status if status not in TERMINAL)


@pytest.mark.parametrize(("from_status", "to_status"), PAIRS, ids=[f"{a}->{b}" for a, b in PAIRS])
def test_transition_pair(alice, from_status, to_status):
    job = make_job(alice, status=from_status)
    if is_allowed(from_status, to_status):
        transition(job, to_status, by=alice, reason="test")
        job.refresh_from_db()
        assert job.status == to_status
        logged = JobStateTransition.objects.get(job=job)
        assert (logged.from_status, logged.to_status, logged.triggered_by, logged.reason) == (
            from_status,
            to_status,
            alice,
            "test",
        )
    else:
        with pytest.raises(InvalidTransition):
            transition(job, to_status, by=alice)
        job.refresh_from_db()
        assert job.status == from_status
        assert not JobStateTransition.objects.filter(job=job).exists()


def test_a_stale_copy_cannot_move_the_job(alice):
    job = make_job(alice)
    stale = Job.objects.get(pk=job.pk)
    transition(job, Status.CANCELLED)
    with pytest.raises(TransitionConflict):
        transition(stale, Status.DISPATCHED)
    assert Job.objects.get(pk=job.pk).status == Status.CANCELLED
    assert JobStateTransition.objects.filter(job=job).count() == 1


def test_a_wrong_lease_token_cannot_move_the_job(alice):
    job = make_job(alice, status=Status.DISPATCHED, lease_token="attempt-b")
    with pytest.raises(TransitionConflict):
        transition(job, Status.RUNNING, token="attempt-a")
    transition(job, Status.RUNNING, token="attempt-b")
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING


@pytest.mark.parametrize("leaving", sorted(HOLDS_GPUS))
def test_leaving_a_gpu_holding_status_releases_the_gpus(alice, node, leaving):
    job = make_job(alice, status=leaving)
    gpu = Gpu.objects.get(node=node, index=0)
    Allocation.objects.create(gpu=gpu, job=job, attempt=1)
    transition(job, Status.FAILED if leaving == Status.RUNNING else Status.PENDING, attempt=2)
    assert not Allocation.objects.active().exists()


def test_terminal_statuses_record_the_finish_time(alice):
    job = make_job(alice)
    transition(job, Status.CANCELLED)
    assert Job.objects.get(pk=job.pk).finished_at is not None


@pytest.mark.django_db(transaction=True)
def test_racing_threads_exactly_one_wins(django_user_model):
    owner = django_user_model.objects.create_user("racer")
    job = make_job(owner)
    targets = [Status.DISPATCHED, Status.CANCELLED, Status.PAUSED, Status.FAILED] * 3
    barrier = threading.Barrier(len(targets))
    wins, conflicts = [], []

    def race(to):
        try:
            mine = Job.objects.get(pk=job.pk)
            barrier.wait()
            transition(mine, to, reason=f"race to {to}")
            wins.append(to)
        except TransitionConflict:
            conflicts.append(to)
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(to,)) for to in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(wins) == 1
    assert len(conflicts) == len(targets) - 1
    assert Job.objects.get(pk=job.pk).status == wins[0]
    assert list(JobStateTransition.objects.filter(job=job).values_list("to_status", flat=True)) == wins
