"""The tick: load a snapshot, call the planner, apply its plan, store it. The ticker runs it."""

import logging
import time
import uuid
from collections import defaultdict
from datetime import datetime

from django.db import IntegrityError, transaction
from django.db.models.functions import Now
from django.utils import timezone
from django_q.tasks import async_task

from gpus.models import Allocation, Gpu, Node
from scheduling import batching, events, gang, planner, planstore, selectors
from scheduling.models import Job, StopRequest, WaitReason
from scheduling.states import Status
from scheduling.stops import request_stop
from scheduling.ticker import ticking
from scheduling.transitions import TransitionConflict, transition

log = logging.getLogger("gpuq.tick")

_CHUNK = 2000


def tick(now: datetime | None = None, timings: dict | None = None) -> planner.Plan:
    """Plan and apply, then store the plan for reads (scheduling.planstore). Run by the ticker
    (scheduling.ticker), which makes sure only one tick runs at a time; never inside a transaction.

    Nothing here holds a write transaction while it reads or plans: the snapshot is read in autocommit
    (WAL readers block no writer) and each decision is applied in its own short transaction by
    compare-and-set, so a change made meanwhile makes a decision fail cleanly (the next tick plans
    afresh) and on SQLite no writer waits longer than one short transaction. The planner's seconds go
    into `timings["plan"]` when given (the ticker counts them for /metrics).
    """
    with ticking():
        now = now or timezone.now()
        _release_scheduled(now)
        batching.form(now)
        snap = selectors.snapshot(now)
        started = time.monotonic()
        plan = planner.plan(snap, now)
        if timings is not None:
            timings["plan"] = time.monotonic() - started
        for fail in plan.fails:
            _fail(fail)
        for preempt in plan.preempts:
            _preempt(preempt)
        for start in plan.starts:
            _dispatch(start)
        _record_waits(plan.waits)
        planstore.save(plan, snap, now)
    return plan


def _release_scheduled(now: datetime) -> None:
    """Scheduled jobs whose start time has come become pending."""
    for job in Job.objects.filter(status=Status.SCHEDULED, start_after__lte=now):
        try:
            transition(
                job, Status.PENDING, reason="start time reached", wait_reason=WaitReason.NONE, wait_detail=""
            )
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
            wait_reason=WaitReason.NONE,
            wait_detail="",
        )
    except TransitionConflict:
        pass


def _preempt(preempt: planner.Preempt) -> None:
    request_stop(  # one compare-and-set: only a job still running is flagged
        Job.objects.get(pk=preempt.job_id),
        StopRequest.PREEMPT,
        by=None,
        reason=f"preempted for job {preempt.for_job}",
    )


def _dispatch(start: planner.Start) -> None:
    # The owner comes along: the dispatch's event names them.
    job = Job.objects.select_related("owner").get(pk=start.job_id)
    if start.parts:
        node, gpus = Node.objects.get(name=start.node), gang.gpus_of(start.parts)
    else:
        gpus = list(Gpu.objects.filter(node__name=start.node, index__in=start.gpus).select_related("node"))
        node = gpus[0].node if gpus else Node.objects.get(name=start.node)
    token = uuid.uuid4().hex
    attempt = dict(
        node=node,
        gpu_indices=list(start.gpus),
        lease_token=token,
        wait_reason=WaitReason.NONE,
        wait_detail="",
        stop_request="",
        stop_requested_at=None,
        stop_requested_by=None,
        stop_reason="",
    )
    try:
        with transaction.atomic():
            Allocation.objects.bulk_create(
                [Allocation(gpu=gpu, job=job, attempt=job.attempt, allocated_at=Now()) for gpu in gpus]
            )
            reason = f"placed on {node.name} GPU {','.join(map(str, start.gpus))}"
            if start.parts:
                reason = "placed on " + "; ".join(f"{n} GPU {','.join(map(str, g))}" for n, g in start.parts)
            transition(job, Status.DISPATCHED, reason=reason, **attempt)
            if start.parts:
                gang.open_parts(job, token, start.parts)
            if job.batch_role == batching.LEADER:
                batching.dispatch_members(job, **attempt)
    except (IntegrityError, TransitionConflict) as error:
        # A GPU the snapshot saw free was taken meanwhile, or the job moved: the next tick plans afresh.
        log.error("job %s: not dispatched to %s: %s", job.pk, node.name, error)
        return
    if start.parts:
        transaction.on_commit(lambda: gang.enqueue(job, token, start.parts))
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
    """Store each waiting job's reason, writing only rows whose reason changed.

    The reasons stored now are read first (one narrow query), so a tick that changes no reason writes
    nothing: at 10,000 waiting, updates that matched no row still scanned every waiting row, a fifth of
    each tick. The update keeps its conditions, so a job that moved meanwhile is left alone."""
    stored = dict(
        (job_id, (reason, detail))
        for job_id, reason, detail in Job.objects.filter(status=Status.PENDING).values_list(
            "id", "wait_reason", "wait_detail"
        )
    )
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    for wait in waits:
        if stored.get(wait.job_id, (wait.reason, wait.detail)) != (wait.reason, wait.detail):
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
