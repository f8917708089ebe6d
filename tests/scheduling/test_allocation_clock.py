"""GPU allocations are timed by the database's clock, like attempts: usage and analytics subtract them,
and a node whose clock is off must not make a job's GPU time negative (seen in the chaos run: a node 60 s
slow released GPUs "before" the tick allocated them)."""

from datetime import timedelta

from django.utils import timezone

from gpus.models import Allocation
from scheduling.states import Status
from scheduling.transitions import transition
from tests.factories import make_job
from tests.scheduling.helpers import dispatch


def test_gpu_allocations_are_timed_by_the_database_clock_not_the_machines(alice, node, monkeypatch):
    true_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: true_now() + timedelta(hours=1))  # this machine is fast
    job = dispatch(make_job(alice, argv=["true"]))
    transition(job, Status.RUNNING, token=job.lease_token, reason="claimed")
    transition(job, Status.COMPLETED, token=job.lease_token, reason="exit code 0")
    allocation = Allocation.objects.get(job=job)
    real = true_now()
    assert abs(allocation.allocated_at - real) < timedelta(minutes=10), allocation.allocated_at
    assert abs(allocation.released_at - real) < timedelta(minutes=10), allocation.released_at
    assert allocation.released_at >= allocation.allocated_at
