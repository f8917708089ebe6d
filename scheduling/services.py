"""Writes on jobs and the queue. Every interface (API, pages, admin, CLI) calls these; none writes a job
itself. Each service authorizes, validates (raising ValidationError naming the field), and changes
status only through `transition()`."""

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cached_property
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone

from accounts.permissions import (
    approval_refusal,
    can_act_on_job,
    can_approve_job,
    can_set_priority,
    can_share_job,
    can_submit,
    can_submit_raw,
    is_admin,
    level_of,
    priority_ceiling,
    team_of,
    visible_jobs,
)
from gpus.models import Gpu
from gpus.placement import PLAIN, Needs, could_ever_fit, eligible
from queueproject.refusals import Forbidden, NotNow, Unprocessable
from scheduling import batching, environment, gang, limits, planner, policies, selectors
from scheduling.models import Job, JobAudit, JobTemplate, PolicyType, StopRequest, WaitReason
from scheduling.states import TERMINAL, Status
from scheduling.stops import request_stop
from scheduling.templating import render_argv
from scheduling.transitions import TransitionConflict, record_creation, transition


def _check_resources(resources: Any) -> list[str]:
    if not isinstance(resources, list) or not all(
        isinstance(r, str) and 0 < len(r) <= 200 for r in resources
    ):
        raise ValidationError({"resources": 'must be a list of names such as ["model:flux-dev"]'})
    return sorted(set(resources))


def job_submit(*, user, dry_run: bool = False, no_wait: bool = False, **spec):
    """Validate and queue a job from a template (with parameters) or, for those allowed, a raw argv;
    `spec` holds job_prepare's keyword arguments (the fields of POST /api/v1/jobs).

    The job starts `blocked` when an approval rule matches, `scheduled` when `start_after` is in the
    future, else `pending`. `dry_run` creates nothing and returns a DryRun saying where the job would go
    now, or why it would wait. `no_wait` refuses (409) a job that would not start at once."""
    job = job_prepare(user=user, **spec)
    if dry_run or no_wait:
        verdict = _dry_run(job.fields, job.needs, job.dependencies, job.fields["submitted_at"])
        if dry_run:
            return verdict
        if not verdict.would_start:
            raise Conflict(f"no_wait: the job would not start now ({verdict.reason}: {verdict.detail})")
    with transaction.atomic():
        made = Job.objects.create(**job.fields)
        if job.dependencies:  # (`set` would first read the new job's dependencies: none)
            made.depends_on.add(*job.dependencies)
        first = record_creation(made, by=user, reason=job.reason)
    # The new job's related rows are what this submission wrote: its answer renders them without
    # reading them back (a third of a submission's time went to that).
    _known_related(made, depends_on=job.dependencies, transitions=[first], attempts=[], audit=[])
    return made


def _known_related(job: Job, **rows: list) -> None:
    """Give `job` its related rows as if prefetched (`job.transitions.all()` then reads nothing)."""
    cache = {}
    for name, items in rows.items():
        queryset = getattr(job, name).all()  # lazy: no query
        queryset._result_cache, queryset._prefetch_done = list(items), True
        cache[name] = queryset
    job._prefetched_objects_cache = cache


class Lookups:
    """What checking a submission reads that is the same for all jobs of one request (nodes, policies,
    GPU models, the jobs and sweeps named as dependencies): read once, so a bulk submission of n jobs
    makes a bounded number of queries, not n times as many."""

    def __init__(self, user):
        self.user = user
        self._jobs: dict[int, Job] = {}
        self._sweep_jobs: dict[int, list[int]] = {}

    @cached_property
    def nodes(self):
        return selectors.all_nodes()

    @cached_property
    def policy_configs(self) -> dict:
        return policies.enabled_configs()

    @cached_property
    def level_limits(self):
        return limits.level_limits(self.user)

    @cached_property
    def gpu_models(self) -> list[str]:
        return list(Gpu.objects.filter(healthy=True).values_list("model_name", flat=True).distinct())

    def load(self, *, job_ids=(), sweep_ids=()) -> None:
        """Read the visible ones of these jobs and sweeps (with their jobs' ids) in a few queries."""
        from accounts.permissions import visible_sweeps

        wanted = set(job_ids) - self._jobs.keys()
        if wanted:
            self._jobs.update((j.pk, j) for j in visible_jobs(self.user).filter(pk__in=wanted))
        sweeps = set(sweep_ids) - self._sweep_jobs.keys()
        if sweeps:
            found = visible_sweeps(self.user).filter(pk__in=sweeps).values_list("pk", flat=True)
            self._sweep_jobs.update((pk, []) for pk in found)
            members = Job.objects.filter(sweep_id__in=found).order_by("pk")
            for job in members.select_related("owner", "node", "template"):
                self._sweep_jobs[job.sweep_id].append(job.pk)
                self._jobs[job.pk] = job

    def dependencies(self, job_ids: list[int], sweep_ids: list[int]) -> list[Job]:
        """The jobs named, and those of the sweeps named; ValidationError for any the user cannot see."""
        self.load(job_ids=job_ids, sweep_ids=sweep_ids)
        missing = sorted(set(sweep_ids) - self._sweep_jobs.keys())
        if missing:
            raise Unprocessable({"depends_on_sweeps": f"no sweep {', '.join(map(str, missing))}"})
        ids = {*job_ids, *(pk for s in sweep_ids for pk in self._sweep_jobs[s])}
        missing = sorted(set(job_ids) - self._jobs.keys())
        if missing:
            raise Unprocessable({"depends_on": f"no job {', '.join(map(str, missing))}"})
        return [self._jobs[pk] for pk in sorted(ids)]


@dataclass
class Prepared:
    """A checked submission, ready to insert: the Job's fields and what goes with them."""

    fields: dict
    needs: Needs
    dependencies: list[Job]
    reason: str  # of its first transition


def job_prepare(
    *,
    user,
    template: JobTemplate | None = None,
    params: dict | None = None,
    argv: list[str] | None = None,
    name: str = "",
    env: dict | None = None,
    gpu_count: int | None = None,
    nodes: int | None = None,
    gpus_per_node: int | None = None,
    priority: int | None = None,
    time_limit_seconds: int | None = None,
    stall_timeout_seconds: int | None = None,
    max_attempts: int | None = None,
    start_after: datetime | None = None,
    off_peak_only: bool = False,
    depends_on: list[int] | None = None,
    depends_on_sweeps: list[int] | None = None,
    resources: list[str] | None = None,
    preemptible: bool = False,
    min_gpu_memory_mb: int | None = None,
    gpu_model: str = "",
    device_ids: list[int] | None = None,
    node_labels: dict | None = None,
    target: str = "auto",
    lookups: Lookups | None = None,
    now: datetime | None = None,
) -> Prepared:
    """Authorize and check one submission and return what to insert, creating nothing. Raises
    PermissionDenied, or ValidationError naming the field. `depends_on_sweeps` waits for every job of
    those sweeps, as if each were in `depends_on`. `lookups` shares the reads of one request between
    its jobs."""
    lookups = lookups or Lookups(user)
    if not can_submit(user):
        raise PermissionDenied("Viewers cannot submit jobs.")
    for field, value in (("name", name), ("argv", argv), ("params", params), ("env", env)):
        environment.refuse_nul(field, value)
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
            raise NotNow({"template": f"{template.name} is disabled"})
        params = params or {}
        argv = render_argv(template.argv_template, template.params_schema, params)
        argv = environment.check_template_argv(template, params, argv)
    # Template-only users may set only the names the template allows; raw-command users any name.
    allowed_env = None if can_submit_raw(user) else template.allowed_env
    job_env = {
        **(template.default_env if template else {}),
        **environment.check_env(env or {}, allowed=allowed_env),
    }
    gpu_count_given = gpu_count is not None
    gpu_count = gpu_count if gpu_count is not None else (template.default_gpu_count if template else 1)
    if gpu_count < 1:
        raise ValidationError({"gpu_count": "must be at least 1"})
    nodes, gpu_count = gang.check_shape(nodes, gpus_per_node, gpu_count, explicit=gpu_count_given)
    try:
        needs = _check_needs(
            gpu_count // nodes, min_gpu_memory_mb, gpu_model, device_ids, node_labels, target, lookups.nodes
        )
    except ValidationError as error:
        if nodes > 1 and "gpu_count" in error.message_dict:  # a part too big for any node
            kind = Unprocessable if isinstance(error, Unprocessable) else ValidationError
            raise kind({"gpus_per_node": error.message_dict["gpu_count"]}) from None
        raise
    if nodes > 1:
        gang.check_fits(nodes, gpu_count // nodes, needs, device_ids, lookups.nodes)
    ceiling = priority_ceiling(user)
    if priority is None:
        priority = ceiling
    elif priority > ceiling and not is_admin(user):
        raise Forbidden({"priority": f"at most {ceiling} for your level"})
    time_limit_seconds = limits.resolve_time_limit(
        user=user, template=template, requested=time_limit_seconds, limits=lookups.level_limits
    )
    if stall_timeout_seconds is not None and stall_timeout_seconds < 1:
        raise ValidationError({"stall_timeout_seconds": "must be at least 1 second"})
    max_attempts = max_attempts if max_attempts is not None else settings.GPUQ_DEFAULT_MAX_ATTEMPTS
    if max_attempts < 1:
        raise ValidationError({"max_attempts": "must be at least 1"})
    resources = _check_resources(resources or [])
    # A job the user cannot see is answered like one that does not exist: ids reveal nothing.
    dependencies = lookups.dependencies(depends_on or [], depends_on_sweeps or [])
    hidden = [d.pk for d in dependencies if not can_act_on_job(user, d)]
    if hidden:
        raise Unprocessable({"depends_on": f"job {hidden[0]} is not yours"})

    now = now or timezone.now()
    approval = policies.approval_reason(
        lookups.policy_configs,
        level=level_of(user),
        gpu_count=gpu_count,
        time_limit_seconds=time_limit_seconds,
        default_runtime=settings.GPUQ_DEFAULT_RUNTIME_SECONDS,
        # Only an approval rule prices GPU models: without one, no need to read them.
        gpu_models=lookups.gpu_models if PolicyType.APPROVAL in lookups.policy_configs else [],
    )
    if approval:
        status, wait_reason, wait_detail = Status.BLOCKED, WaitReason.APPROVAL, approval
    elif start_after is not None and start_after > now:
        status, wait_reason, wait_detail = (
            Status.SCHEDULED,
            WaitReason.BEGIN_TIME,
            f"starts after {start_after.isoformat()}",
        )
    else:
        status, wait_reason, wait_detail = Status.PENDING, WaitReason.NONE, ""
    fields = dict(
        owner=user,
        team=team_of(user),
        name=name or (template.name if template else argv[0])[:200],
        template=template,
        params=params,
        argv=argv,
        env=job_env,
        gpu_count=gpu_count,
        nodes=nodes,
        priority=priority,
        status=status,
        wait_reason=wait_reason,
        wait_detail=wait_detail[:300],
        time_limit_seconds=time_limit_seconds,
        stall_timeout_seconds=stall_timeout_seconds,
        max_attempts=max_attempts,
        start_after=start_after,
        off_peak_only=off_peak_only,
        resources=resources,
        preemptible=preemptible,
        submitted_at=now,
        min_gpu_memory_mb=needs.min_memory_mb,
        gpu_model=needs.model or "",
        device_ids=list(needs.device_ids),
        node_labels=dict(needs.labels),
        target=needs.target,
    )
    if template is not None and template.batchable and nodes == 1:  # a gang job runs alone
        fields.update(batch_key=batching.batch_key(template, fields), batch_role=batching.COLLECTING)
        if status == Status.PENDING:
            fields.update(wait_reason=WaitReason.BATCHING, wait_detail="collecting a batch")
    reason = f"submitted; {approval}" if approval else "submitted"
    return Prepared(fields=fields, needs=needs, dependencies=dependencies, reason=reason)


class Conflict(Exception):
    """The request cannot be done in the queue's present state (API: 409)."""


def _check_needs(gpu_count, min_gpu_memory_mb, gpu_model, device_ids, node_labels, target, nodes) -> Needs:
    if target not in ("auto", "local", "worker"):
        raise ValidationError({"target": "one of auto, local, worker"})
    if min_gpu_memory_mb is not None and (not isinstance(min_gpu_memory_mb, int) or min_gpu_memory_mb < 1):
        raise ValidationError({"min_gpu_memory_mb": "a whole number of MB, at least 1"})
    device_ids = device_ids or []
    if not all(isinstance(i, int) and i >= 0 for i in device_ids) or len(set(device_ids)) != len(device_ids):
        raise ValidationError({"device_ids": "distinct GPU indices (0, 1, …)"})
    if device_ids and len(device_ids) != gpu_count:
        raise Unprocessable({"device_ids": f"name exactly gpu_count ({gpu_count}) devices"})
    node_labels = node_labels or {}
    if not isinstance(node_labels, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in node_labels.items()
    ):
        raise ValidationError({"node_labels": 'an object of label: glob, e.g. {"gpu_type": "a100*"}'})
    needs = Needs.of(min_gpu_memory_mb, gpu_model, device_ids, node_labels, target)
    if not could_ever_fit(gpu_count, nodes, needs):
        largest = max((len(eligible(n, n.specs.keys(), needs)) for n in nodes), default=0)
        wanted = f" with {needs.describe()}" if not needs.plain else ""
        field = _unfittable_field(gpu_count, nodes, needs)
        raise Unprocessable(
            {
                field: f"no node has {gpu_count} GPUs{wanted}; the most on one node is {largest}, "
                "so this job could never run"
            }
        )
    return needs


def _unfittable_field(gpu_count: int, nodes, needs: Needs) -> str:
    """The submit field to blame when no node could ever run the job: the first restriction that alone
    rules out every node, else `gpu_count` (too many GPUs, or only the combination fails)."""
    if not could_ever_fit(gpu_count, nodes, PLAIN):
        return "gpu_count"
    alone = {
        "device_ids": replace(PLAIN, device_ids=needs.device_ids),
        "gpu_model": replace(PLAIN, model=needs.model),
        "min_gpu_memory_mb": replace(PLAIN, min_memory_mb=needs.min_memory_mb),
        "node_labels": replace(PLAIN, labels=needs.labels),
        "target": replace(PLAIN, target=needs.target),
    }
    return next((f for f, only in alone.items() if not could_ever_fit(gpu_count, nodes, only)), "gpu_count")


@dataclass(frozen=True)
class DryRun:
    would_start: bool
    status: str  # the status the job would be created in
    node: str | None = None
    gpus: tuple[int, ...] = ()
    reason: str = ""
    detail: str = ""
    position: int | None = None


def _dry_run(fields: dict, needs: Needs, dependencies: list[Job], now) -> DryRun:
    """Where the planner would put this job now, given everything else waiting, without creating it."""
    if fields["status"] != Status.PENDING:
        return DryRun(False, fields["status"], reason=fields["wait_reason"], detail=fields["wait_detail"])
    probe = planner.PendingJob(
        id=-1,
        gpu_count=fields["gpu_count"],
        priority=fields["priority"],
        submitted_at=now,
        owner=fields["owner"].pk,
        team=fields["team"].pk if fields["team"] else None,
        off_peak_only=fields["off_peak_only"],
        depends_on=tuple(d.pk for d in dependencies),
        resources=tuple(fields["resources"]),
        time_limit=fields["time_limit_seconds"],
        needs=needs,
        nodes=fields["nodes"],
    )
    snap = selectors.snapshot(now)
    snap = replace(snap, pending=(*snap.pending, probe))
    result = planner.plan(snap, now)
    position = result.order.index(-1) + 1
    for start in result.starts:
        if start.job_id == -1:
            return DryRun(True, Status.PENDING, start.node, start.gpus, position=position)
    for outcome in (*result.waits, *result.fails):
        if outcome.job_id == -1:
            return DryRun(
                False, Status.PENDING, reason=outcome.reason, detail=outcome.detail, position=position
            )
    return DryRun(False, Status.PENDING, position=position)


def _authorize(user, job: Job, action: str) -> None:
    if not can_act_on_job(user, job):
        raise PermissionDenied(f"You can only {action} your own jobs (leads: your team's).")


def _retry_on_conflict(job: Job, attempt):
    """Run `attempt(job)` on a fresh copy until it no longer meets a moving job (a few tries)."""
    for _ in range(5):
        job.refresh_from_db()
        try:
            return attempt(job)
        except TransitionConflict:
            continue
    raise TransitionConflict(f"job {job.pk} keeps changing; try again")


def job_cancel(*, job: Job, user, reason: str = "") -> Job:
    """Cancel a job. A waiting or dispatched job ends at once; a running one is asked to stop (SIGTERM,
    grace, SIGKILL) and ends `cancelled` when its executor has stopped it and freed its GPUs."""
    _authorize(user, job, "cancel")
    why = reason or f"cancelled by {user}"

    def attempt(job):
        if job.status in TERMINAL:
            raise NotNow({"status": f"job {job.pk} already ended ({job.status})"})
        if job.status == Status.RUNNING:
            request_stop(job, StopRequest.CANCEL, by=user, reason=why)
            job.refresh_from_db()
            if job.status != Status.RUNNING:
                raise TransitionConflict("it stopped meanwhile")
            return job
        return transition(job, Status.CANCELLED, by=user, reason=why)

    return _retry_on_conflict(job, attempt)


def job_pause(*, job: Job, user, reason: str = "") -> Job:
    """Hold a waiting job, or stop a running one (grace period, GPUs freed) and hold it."""
    _authorize(user, job, "pause")
    why = reason or f"paused by {user}"

    def attempt(job):
        if job.status == Status.RUNNING:
            request_stop(job, StopRequest.PAUSE, by=user, reason=why)
            job.refresh_from_db()
            if job.status != Status.RUNNING:
                raise TransitionConflict("it stopped meanwhile")
            return job
        if job.status not in (Status.PENDING, Status.SCHEDULED):
            raise NotNow({"status": f"a {job.status} job cannot be paused"})
        return transition(
            job, Status.PAUSED, by=user, reason=why, wait_reason=WaitReason.PAUSED, wait_detail=""
        )

    return _retry_on_conflict(job, attempt)


def job_resume(*, job: Job, user, reason: str = "") -> Job:
    _authorize(user, job, "resume")
    if job.status != Status.PAUSED:
        raise NotNow({"status": f"only a paused job can be resumed; this one is {job.status}"})
    # A job paused before its start time waits for it again, as it did before the pause.
    later = job.start_after is not None and job.start_after > timezone.now()
    return transition(
        job,
        Status.SCHEDULED if later else Status.PENDING,
        by=user,
        reason=reason or f"resumed by {user}",
        wait_reason=WaitReason.BEGIN_TIME if later else WaitReason.NONE,
        wait_detail=f"starts after {job.start_after.isoformat()}" if later else "",
    )


def job_approve(*, job: Job, user, reason: str = "") -> Job:
    if not can_approve_job(user, job):
        raise PermissionDenied(approval_refusal(user, job))
    if job.status != Status.BLOCKED:
        raise NotNow({"status": f"only a blocked job can be approved; this one is {job.status}"})
    later = job.start_after is not None and job.start_after > timezone.now()
    return transition(
        job,
        Status.SCHEDULED if later else Status.PENDING,
        by=user,
        reason=reason or f"approved by {user}",
        wait_reason=WaitReason.BEGIN_TIME if later else WaitReason.NONE,
        wait_detail="",
    )


def job_reject(*, job: Job, user, reason: str) -> Job:
    if not can_approve_job(user, job):
        raise PermissionDenied(approval_refusal(user, job))
    if not reason.strip():
        raise ValidationError({"reason": "say why the job is rejected"})
    if job.status != Status.BLOCKED:
        raise NotNow({"status": f"only a blocked job can be rejected; this one is {job.status}"})
    return transition(job, Status.REJECTED, by=user, reason=reason, error=f"rejected: {reason}")


def job_set_priority(*, job: Job, user, priority: int, reason: str = "") -> Job:
    """Owners may lower their own job's priority; leads set their team's jobs within [Background, their
    ceiling]; admins set any job's within [-1000, 1000] (accounts.permissions.can_set_priority). Logged."""
    _authorize(user, job, "change the priority of")
    refusal = can_set_priority(user, job, priority)
    if refusal:
        raise Forbidden({"priority": refusal})
    if job.status in TERMINAL:
        raise NotNow({"status": f"job {job.pk} already ended ({job.status})"})
    with transaction.atomic():
        old = job.priority
        Job.objects.filter(pk=job.pk).update(priority=priority)
        JobAudit.objects.create(
            job=job, by=user, action="priority", detail=f"{old} → {priority}. {reason}".strip()
        )
    job.priority = priority
    _after_queue_change()
    return job


def job_move(*, job: Job, user, before: Job | None = None, after: Job | None = None, reason: str = "") -> Job:
    """Admins move a waiting job within its priority: just before or after another job of that priority
    (or to the front or back of it with neither). Logged."""
    if not is_admin(user):
        raise PermissionDenied("Only admins reorder the queue.")
    if job.status not in (Status.PENDING, Status.SCHEDULED, Status.PAUSED, Status.BLOCKED):
        raise NotNow({"job": f"only waiting jobs can be moved; this one is {job.status}"})
    peers = Job.objects.filter(status=Status.PENDING, priority=job.priority).exclude(pk=job.pk)
    anchor = before or after
    if anchor is not None and (anchor.priority != job.priority or anchor.pk == job.pk):
        raise Unprocessable({"before" if before else "after": "must be another job of the same priority"})
    if before is not None:
        previous = peers.filter(queue_order__lt=before.queue_order).aggregate(m=Max("queue_order"))["m"]
        order = (previous + before.queue_order) / 2 if previous is not None else before.queue_order - 1
    elif after is not None:
        following = peers.filter(queue_order__gt=after.queue_order).aggregate(m=Min("queue_order"))["m"]
        order = (following + after.queue_order) / 2 if following is not None else after.queue_order + 1
    else:
        first = peers.aggregate(m=Min("queue_order"))["m"]
        order = (first if first is not None else job.queue_order) - 1
    with transaction.atomic():
        Job.objects.filter(pk=job.pk).update(queue_order=order)
        where = f"before job {before.pk}" if before else f"after job {after.pk}" if after else "to the front"
        JobAudit.objects.create(job=job, by=user, action="move", detail=f"moved {where}. {reason}".strip())
    job.queue_order = order
    _after_queue_change()
    return job


def _after_queue_change() -> None:
    from scheduling import events, ticker

    events.emit_queue(1)
    ticker.request_tick()


def _require_admin(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("Only admins change scheduling policies.")


def queue_pause(*, user, reason: str = "") -> None:
    """No new starts until resumed; running jobs are untouched."""
    _require_admin(user)
    policies.set_policy(
        PolicyType.QUEUE_PAUSE, enabled=True, config={"reason": reason[:300]} if reason else {}
    )


def queue_resume(*, user) -> None:
    _require_admin(user)
    policies.set_policy(PolicyType.QUEUE_PAUSE, enabled=False)
    _after_queue_change()


def concurrency_set(*, user, **limits) -> dict:
    """Set any of max_concurrent, user_max_concurrent, team_max_concurrent (None: no limit)."""
    _require_admin(user)
    current = policies.enabled_configs().get(PolicyType.CONCURRENCY, {})
    row = policies.set_policy(PolicyType.CONCURRENCY, enabled=True, config={**current, **limits})
    _after_queue_change()
    return row.config


def job_share(*, job: Job, user, with_user, permission: str = "act", revoke: bool = False) -> list[str]:
    """The owner (or an admin) shares a job with another user: `view` lets them see its details and log,
    `act` also lets them cancel, pause, resume and lower its priority (django-guardian, per job).
    Returns what that user holds on the job afterwards."""
    from guardian.shortcuts import assign_perm, get_user_perms, remove_perm

    if not can_share_job(user, job):
        raise PermissionDenied("Only the job's owner or an admin shares it.")
    if permission not in ("view", "act"):
        raise ValidationError({"permission": "view or act"})
    if with_user.pk == job.owner_id:
        raise Unprocessable({"user": "the owner already holds every right on the job"})
    names = ["scheduling.view_job"] + (["scheduling.act_on_job"] if permission == "act" else [])
    with transaction.atomic():
        if revoke:  # revoking view takes act too; revoking act leaves view
            for name in ["scheduling.act_on_job"] + (["scheduling.view_job"] if permission == "view" else []):
                remove_perm(name, with_user, job)
        else:
            for name in names:
                assign_perm(name, with_user, job)
        JobAudit.objects.create(
            job=job,
            by=user,
            action="share",
            detail=f"{'revoked' if revoke else 'granted'} {permission} for {with_user.username}",
        )
    return sorted(get_user_perms(with_user, job))
