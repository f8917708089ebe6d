"""Writes on jobs: submit and cancel. Every interface (API, pages, admin, CLI) calls these."""

from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.permissions import can_submit, can_submit_raw, is_admin, priority_ceiling, team_of
from scheduling import selectors
from scheduling.models import Job, JobTemplate
from scheduling.states import TERMINAL, Status
from scheduling.templating import render_argv
from scheduling.transitions import TransitionConflict, record_creation, transition

_RESERVED_ENV_PREFIXES = ("GPUQ_", "CUDA_VISIBLE_DEVICES")


def _check_env(env: Any) -> dict[str, str]:
    if not isinstance(env, dict):
        raise ValidationError({"env": "must be an object of NAME: value"})
    for name, value in env.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ValidationError({"env": f"{name!r}: names are letters, digits and _"})
        if name.startswith(_RESERVED_ENV_PREFIXES):
            raise ValidationError({"env": f"{name}: set by gpuq, not by the job"})
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ValidationError({"env": f"{name}: the value must be a string or a number"})
    return {name: str(value) for name, value in env.items()}


def job_submit(
    *,
    user,
    template: JobTemplate | None = None,
    params: dict | None = None,
    argv: list[str] | None = None,
    name: str = "",
    env: dict | None = None,
    gpu_count: int | None = None,
    priority: int | None = None,
    time_limit_seconds: int | None = None,
    max_attempts: int | None = None,
) -> Job:
    """Validate and queue a job from a template (with parameters) or, for those allowed, a raw argv."""
    if not can_submit(user):
        raise PermissionDenied("Viewers cannot submit jobs.")
    if (template is None) == (argv is None):
        raise ValidationError({"template": "give either a template (with params) or an argv, not both"})
    if argv is not None:
        if not can_submit_raw(user):
            raise PermissionDenied(
                "Submitting a raw argv needs the 'submit raw commands' permission; submit a template instead."
            )
        if not isinstance(argv, list) or not argv or not all(isinstance(a, str) and a for a in argv):
            raise ValidationError({"argv": "must be a non-empty list of non-empty strings"})
        params = {}
    else:
        if not template.enabled:
            raise ValidationError({"template": f"{template.name} is disabled"})
        params = params or {}
        argv = render_argv(template.argv_template, template.params_schema, params)
    job_env = {**(template.default_env if template else {}), **_check_env(env or {})}
    gpu_count = gpu_count if gpu_count is not None else (template.default_gpu_count if template else 1)
    if gpu_count < 1:
        raise ValidationError({"gpu_count": "must be at least 1"})
    largest = selectors.largest_node_gpu_count()
    if gpu_count > largest:
        raise ValidationError(
            {
                "gpu_count": f"no node has {gpu_count} GPUs; the largest has {largest}, so this job could never run"
            }
        )
    ceiling = priority_ceiling(user)
    if priority is None:
        priority = ceiling
    elif priority > ceiling and not is_admin(user):
        raise ValidationError({"priority": f"at most {ceiling} for your level"})
    if time_limit_seconds is None and template is not None:
        time_limit_seconds = template.default_time_limit_seconds
    if time_limit_seconds is not None and time_limit_seconds < 1:
        raise ValidationError({"time_limit_seconds": "must be at least 1 second"})
    max_attempts = max_attempts if max_attempts is not None else settings.GPUQ_DEFAULT_MAX_ATTEMPTS
    if max_attempts < 1:
        raise ValidationError({"max_attempts": "must be at least 1"})
    with transaction.atomic():
        job = Job.objects.create(
            owner=user,
            team=team_of(user),
            name=name or (template.name if template else argv[0])[:200],
            template=template,
            params=params,
            argv=argv,
            env=job_env,
            gpu_count=gpu_count,
            priority=priority,
            status=Status.PENDING,
            time_limit_seconds=time_limit_seconds,
            max_attempts=max_attempts,
        )
        record_creation(job, by=user)
    return job


def can_act_on(user, job: Job) -> bool:
    return is_admin(user) or job.owner_id == user.pk


def job_cancel(*, job: Job, user, reason: str = "") -> Job:
    """Cancel a job. A waiting or dispatched job ends at once; a running one is asked to stop (SIGTERM,
    grace, SIGKILL) and ends `cancelled` when its executor has stopped it and freed its GPUs."""
    if not can_act_on(user, job):
        raise PermissionDenied("You can only cancel your own jobs.")
    why = reason or f"cancelled by {user}"
    for _ in range(5):
        job.refresh_from_db()
        if job.status in TERMINAL:
            raise ValidationError({"status": f"job {job.pk} already ended ({job.status})"})
        if job.status == Status.RUNNING:
            Job.objects.filter(pk=job.pk, status=Status.RUNNING, cancel_requested_at__isnull=True).update(
                cancel_requested_at=timezone.now(), cancel_requested_by=user
            )
            job.refresh_from_db()
            if job.status == Status.RUNNING:
                return job
            continue
        try:
            return transition(job, Status.CANCELLED, by=user, reason=why)
        except TransitionConflict:
            continue  # it moved (e.g. dispatched → running) meanwhile: look again
    raise TransitionConflict(f"job {job.pk} keeps changing; try again")
