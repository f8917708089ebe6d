"""Notices gpuq raises itself: a job waiting past the threshold, and a user's quota at 80% and 100%, each
once; they become job events that fan-out classifies like any other."""

from datetime import timedelta

import pytest
from django.utils import timezone

from gpus.models import Allocation
from notifications import notices
from notifications.kinds import classify
from scheduling.models import Event, GpuQuota, Job
from scheduling.states import Status
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def raised(job) -> list[str]:
    return [
        classify(e.as_message())
        for e in Event.objects.filter(job_id=job.pk, kind=Event.Kind.JOB).order_by("pk")
        if "notice" in e.data
    ]


def test_a_job_waiting_past_the_threshold_is_told_once_per_attempt(alice, settings):
    settings.GPUQ_NOTIFY_WAITING_SECONDS = 3600
    now = timezone.now()
    old = make_job(alice)
    Job.objects.filter(pk=old.pk).update(updated_at=now - timedelta(hours=2), wait_reason="resources")
    recent = make_job(alice)
    assert notices.check(now) == 1
    assert notices.check(now) == 0
    assert raised(old) == ["waiting_long"] and raised(recent) == []
    event = Event.objects.filter(job_id=old.pk).last()
    assert "resources" in event.data["reason"] and event.data["owner"] == "alice"
    Job.objects.filter(pk=old.pk).update(attempt=old.attempt + 1)  # requeued and waiting again: told again
    assert notices.check(now) == 1
    settings.GPUQ_NOTIFY_WAITING_SECONDS = 0  # off
    Job.objects.filter(pk=old.pk).update(attempt=old.attempt + 2)
    assert notices.check(now) == 0


def test_a_quota_is_told_at_80_and_at_100_percent_once_per_window(alice, node):
    GpuQuota.objects.create(user=alice, daily_gpu_seconds=3600)
    job = make_job(alice, status=Status.RUNNING)
    now = timezone.now().replace(hour=12)
    allocation = Allocation.objects.create(
        gpu=node.gpus.first(), job=job, attempt=0, allocated_at=now - timedelta(minutes=50)
    )
    assert notices.check(now) == 1 and notices.check(now) == 0
    Allocation.objects.filter(pk=allocation.pk).update(allocated_at=now - timedelta(minutes=70))
    assert notices.check(now) == 1 and notices.check(now) == 0
    assert raised(job) == ["quota_80", "quota_100"]
    assert (
        "used 117% of the daily GPU-time quota" in Event.objects.filter(job_id=job.pk).last().data["reason"]
    )
