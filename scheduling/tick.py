"""The tick: load a snapshot, call the planner, apply its plan. One tick at a time everywhere."""

import logging
import uuid
from collections import defaultdict
from datetime import datetime

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django_q.tasks import async_task

from gpus.models import Allocation, Gpu, Node
from scheduling import batching, events, planner, selectors
from scheduling.models import Job, StopRequest
from scheduling.states import Status
from scheduling.stops import request_stop
from scheduling.transitions import TransitionConflict, transition

log = logging.getLogger("gpuq.tick")

_ADVISORY_LOCK_KEY = 0x67707571  # "gpuq"
_CHUNK = 2000


def _lock(*, wait: bool = True) -> bool:
    """Serialise ticks across processes and machines for the rest of this transaction. Returns False
    (without waiting) when `wait` is false and another tick holds the lock.

    PostgreSQL: a transaction-level advisory lock. SQLite: the IMMEDIATE transaction already holds the
    database's single write lock.
    """
    if connection.vendor != "postgresql":
        return True
    with connection.cursor() as cursor:
        if not wait:
            cursor.execute("SELECT pg_try_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
            return bool(cursor.fetchone()[0])
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_ADVISORY_LOCK_KEY])
    return True


def tick(now: datetime | None = None, *, wait: bool = True) -> planner.Plan | None:
    """Plan and apply. With `wait=False` (a node's periodic tick) a tick already running elsewhere is
    left to do the work, and None is returned: a node loop never waits behind another node's tick (a
    frozen node's, say)."""
    with events.ticking(), transaction.atomic():
        if not _lock(wait=wait):
            return None
        # Taken once the lock is held: a tick that waited for another must not plan in the past.
        now = now or timezone.now()
        _release_scheduled(now)
        batching.form(now)
        plan = planner.plan(selectors.snapshot(now), now)
        for fail in plan.fails:
            _fail(fail)
        for preempt in plan.preempts:
            request_stop(
                Job.objects.get(pk=preempt.job_id),
                StopRequest.PREEMPT,
                by=None,
                reason=f"preempted for job {preempt.for_job}",
            )
        for start in plan.starts:
            _dispatch(start)
        _record_waits(plan.waits)
    return plan


def _release_scheduled(now: datetime) -> None:
    """Scheduled jobs whose start time has come become pending."""
    for job in Job.objects.filter(status=Status.SCHEDULED, start_after__lte=now):
        try:
            transition(job, Status.PENDING, reason="start time reached", wait_reason="", wait_detail="")
        except TransitionConflict:
            pass


def _fail(fail: planner.Fail) -> None:
    job = Job.objects.get(pk=fail.job_id)
    try:
        transition(
            job,
            Status.FAILED,
            reason=f"{fail.reason}: {fail.detail}",
            error=f"{fail.reason}: {fail.detail}",
            wait_reason="",
            wait_detail="",
        )
    except TransitionConflict:
        pass


def _dispatch(start: planner.Start) -> None:
    job = Job.objects.get(pk=start.job_id)
    node = Node.objects.get(name=start.node)
    gpus = list(Gpu.objects.filter(node=node, index__in=start.gpus))
    token = uuid.uuid4().hex
    attempt = dict(
        node=node,
        gpu_indices=list(start.gpus),
        lease_token=token,
        wait_reason="",
        wait_detail="",
        stop_request="",
        stop_requested_at=None,
        stop_requested_by=None,
        stop_reason="",
    )
    try:
        with transaction.atomic():
            Allocation.objects.bulk_create(
                [Allocation(gpu=gpu, job=job, attempt=job.attempt) for gpu in gpus]
            )
            reason = f"placed on {node.name} GPU {','.join(map(str, start.gpus))}"
            transition(job, Status.DISPATCHED, reason=reason, **attempt)
            if job.batch_role == batching.LEADER:
                batching.dispatch_members(job, **attempt)
    except (IntegrityError, TransitionConflict) as error:
        # Cannot happen under the tick lock unless something bypassed it; the next tick plans afresh.
        log.error("job %s: not dispatched to %s: %s", job.pk, node.name, error)
        return
    transaction.on_commit(
        lambda: async_task(
            "scheduling.executor.run_job",
            job.pk,
            token,
            cluster=node.queue_name,
            task_name=f"job-{job.pk}-attempt-{job.attempt}",
            ack_failure=True,
        )
    )


def _record_waits(waits: tuple[planner.Wait, ...]) -> None:
    """Store each waiting job's reason, writing only rows whose reason changed."""
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for wait in waits:
        groups[(wait.reason, wait.detail)].append(wait.job_id)
    changed = 0
    for (reason, detail), ids in groups.items():
        for i in range(0, len(ids), _CHUNK):
            changed += (
                Job.objects.filter(pk__in=ids[i : i + _CHUNK], status=Status.PENDING)
                .exclude(wait_reason=reason, wait_detail=detail)
                .update(wait_reason=reason, wait_detail=detail)
            )
    if changed:
        events.emit_queue(changed)  # one event for the lot: pages refetch the queue
