"""Small factories for rows the tests need. Jobs made here start in any status (set-up, not a change)."""

from datetime import datetime

from django.utils import timezone

from scheduling.models import Job
from scheduling.states import Status


def make_job(
    owner,
    *,
    status: str = Status.PENDING,
    gpu_count: int = 1,
    priority: int = 10,
    argv: list[str] | None = None,
    submitted_at: datetime | None = None,
    **fields,
) -> Job:
    return Job.objects.create(
        owner=owner,
        status=status,
        gpu_count=gpu_count,
        priority=priority,
        argv=argv or ["true"],
        submitted_at=submitted_at or timezone.now(),
        **fields,
    )
