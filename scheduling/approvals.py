"""The approvals inbox: the blocked jobs a lead or admin may decide on, each with its cost estimate and the
rule that blocked it; read by the page (`/approvals/`), the API (`/api/v1/approvals`) and the CLI."""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import QuerySet

from accounts import permissions
from gpus.models import Gpu
from scheduling import policies
from scheduling.models import Job, PolicyType


@dataclass(frozen=True)
class Entry:
    job: Job
    cost: policies.Cost
    max_cost: float | None  # the approval rule's limit (None: the rule has no cost limit)
    rule: str  # why it waits: the rule that blocked it, as recorded at submission (`wait_detail`)


def inbox(user) -> QuerySet[Job]:
    """The blocked jobs `user` may approve or reject (accounts.permissions decides), oldest first."""
    return permissions.approvable_jobs(user).order_by("submitted_at", "id")


def entries(jobs) -> list[Entry]:
    """The jobs (one page of `inbox`) with their costs, priced by the approval rule as it is now (its
    defaults if it was switched off since) over the healthy GPUs' models, as at submission. Two queries
    however many jobs."""
    jobs = list(jobs)
    if not jobs:
        return []
    rule = policies.enabled_configs().get(PolicyType.APPROVAL) or policies.DEFAULTS[PolicyType.APPROVAL]
    models = list(Gpu.objects.filter(healthy=True).order_by().values_list("model_name", flat=True).distinct())
    return [
        Entry(
            job=job,
            cost=policies.approval_cost(
                rule,
                gpu_count=job.gpu_count,
                time_limit_seconds=job.time_limit_seconds,
                gpu_models=models,
                default_runtime=settings.GPUQ_DEFAULT_RUNTIME_SECONDS,
            ),
            max_cost=rule.get("max_cost"),
            rule=job.wait_detail or job.get_wait_reason_display(),
        )
        for job in jobs
    ]


def as_dict(entry: Entry) -> dict:
    """One entry as the API gives it (no argv, params or env: decide from the job's page for those)."""
    job = entry.job
    return {
        "id": job.pk,
        "name": job.name,
        "owner": job.owner.username,
        "team": job.team.name if job.team else None,
        "gpu_count": job.gpu_count,
        "gpu_model": job.gpu_model,
        "time_limit_seconds": job.time_limit_seconds,
        "priority": job.priority,
        "submitted_at": job.submitted_at.isoformat(),
        "start_after": job.start_after.isoformat() if job.start_after else None,
        "rule": entry.rule,
        "cost": {
            "estimate": round(entry.cost.total, 2),
            "gpus": entry.cost.gpus,
            "hours": round(entry.cost.hours, 3),
            "price_per_gpu_hour": entry.cost.price_per_gpu_hour,
            "max_cost": entry.max_cost,
        },
        "approve_url": f"/api/v1/jobs/{job.pk}/approve",
        "reject_url": f"/api/v1/jobs/{job.pk}/reject",
    }
