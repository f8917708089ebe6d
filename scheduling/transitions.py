"""The one door for job status: `transition()` is the only code that changes `Job.status`."""

import logging

from django.db import transaction
from django.db.models import Q
from django.db.models.functions import Now
from django.utils import timezone

from gpus.models import Allocation
from scheduling import events, fastinsert, ticker
from scheduling.models import Attempt, AttemptPart, Job, JobStateTransition
from scheduling.states import HOLDS_GPUS, TERMINAL, Status, is_allowed

log = logging.getLogger("gpuq.transitions")


class InvalidTransition(Exception):
    """The state machine forbids this change (API: 400)."""


class TransitionConflict(Exception):
    """The job moved under us, or its lease changed hands (API: 409)."""


def transition(
    job: Job,
    to: Status,
    *,
    by=None,
    reason: str = "",
    token: str | None = None,
    guard: Q | None = None,
    lease: dict | None = None,
    **fields,
) -> Job:
    """Move `job` from the status it holds to `to`, by compare-and-set, and log it.

    `token` fences the change to the attempt holding that lease; `guard` adds any other condition the
    row must still meet. The job's Attempt rows change in the same transaction: entering `dispatched`
    opens one (for the `lease_token`, `node` and `gpu_indices` in `fields`), `dispatched → running` is
    the executor's claim (its lease starts), and leaving dispatched/running closes the open one with
    the outcome and reason, and releases the job's GPUs. `lease` holds more fields for that attempt row
    (process identity, exit code or signal). Attempt times come from the database's clock.
    After commit, a tick is requested when the change can let a job start. Raises InvalidTransition
    when the table forbids the change and TransitionConflict when the row no longer matches.
    """
    from_status = Status(job.status)
    if not is_allowed(from_status, to):
        raise InvalidTransition(f"job {job.pk}: {from_status} → {to} is not allowed")
    now = timezone.now()
    updates = {"status": to, "updated_at": now, **fields}
    if to in TERMINAL:
        updates.setdefault("finished_at", now)
    with transaction.atomic():
        rows = Job.objects.filter(pk=job.pk, status=from_status)
        if token is not None:
            rows = rows.filter(lease_token=token)
        if guard is not None:
            rows = rows.filter(guard)
        if rows.update(**updates) != 1:
            raise TransitionConflict(f"job {job.pk} is no longer {from_status} (or its lease changed)")
        JobStateTransition.objects.create(
            job_id=job.pk,
            from_status=from_status,
            to_status=to,
            attempt=updates.get("attempt", job.attempt),
            at=now,
            triggered_by=by,
            reason=reason[:500],
        )
        _record_attempt(job, from_status, to, token, updates, reason, lease or {})
        if from_status in HOLDS_GPUS and to not in HOLDS_GPUS:
            # The database's clock, as the allocation's start (tick): GPU-hours never come out negative
            # because two machines' clocks disagree.
            Allocation.objects.filter(job_id=job.pk, released_at__isnull=True).update(released_at=Now())
            if getattr(job, "nodes", 1) > 1:  # a gang job: its parts end with the attempt
                AttemptPart.objects.filter(attempt__job_id=job.pk, ended_at__isnull=True).update(
                    ended_at=Now(), outcome=to, reason=reason[:500]
                )
        for name, value in updates.items():
            setattr(job, name, value)
        events.emit_job(job, from_status=from_status, reason=reason[:500])
        # Ticks that can change something: a job became eligible, GPUs came free, or a job ended (its
        # dependents may start or fail).
        if to == Status.PENDING or to in TERMINAL or (from_status in HOLDS_GPUS and to not in HOLDS_GPUS):
            ticker.request_tick()
    log.info("job %s: %s → %s%s", job.pk, from_status, to, f" ({reason})" if reason else "")
    return job


def transition_waiting(jobs: list[Job], to: Status, *, by=None, reason: str = "") -> list[Job]:
    """`transition()` for many waiting jobs at once (a sweep cancelled as one), in a few statements
    whatever their number: each job moves only if it still holds the status it was read with (the
    others moved meanwhile and are left out); returns the jobs moved, their fields updated. Only for
    changes that neither start nor stop an execution: jobs and target outside HOLDS_GPUS."""
    if to in HOLDS_GPUS or any(job.status in HOLDS_GPUS for job in jobs):
        raise InvalidTransition("transition_waiting moves waiting jobs only; use transition()")
    for job in jobs:
        if not is_allowed(job.status, to):
            raise InvalidTransition(f"job {job.pk}: {job.status} → {to} is not allowed")
    now = timezone.now()
    updates = {"status": to, "updated_at": now, **({"finished_at": now} if to in TERMINAL else {})}
    moved = []
    with transaction.atomic():
        for from_status in sorted({job.status for job in jobs}):
            group = {job.pk: job for job in jobs if job.status == from_status}
            # Locked until commit (PostgreSQL; SQLite's IMMEDIATE transaction holds the write lock):
            # the update below moves exactly the rows read here.
            still = list(
                Job.objects.select_for_update()
                .filter(pk__in=group, status=from_status)
                .order_by("pk")
                .values_list("pk", flat=True)
            )
            Job.objects.filter(pk__in=still).update(**updates)
            moved += [(group[pk], from_status) for pk in still]
        for job, _ in moved:
            for name, value in updates.items():
                setattr(job, name, value)
        fastinsert.insert_values(
            JobStateTransition,
            [
                {
                    "job_id": job.pk,
                    "from_status": from_status,
                    "to_status": to,
                    "attempt": job.attempt,
                    "at": now,
                    "triggered_by_id": by.pk if by is not None else None,
                    "reason": reason[:500],
                }
                for job, from_status in moved
            ],
        )
        for from_status in {f for _, f in moved}:
            events.emit_jobs(
                [job for job, f in moved if f == from_status],
                from_status=from_status,
                reasons=[reason[:500]] * sum(1 for _, f in moved if f == from_status),
            )
        if moved and (to == Status.PENDING or to in TERMINAL):
            ticker.request_tick()
    log.info("%d jobs → %s%s", len(moved), to, f" ({reason})" if reason else "")
    return [job for job, _ in moved]


def _record_attempt(job, from_status, to, token, updates, reason, lease) -> None:
    open_rows = Attempt.objects.filter(job_id=job.pk, ended_at__isnull=True)
    if from_status in HOLDS_GPUS and to not in HOLDS_GPUS:
        # A reaper may have closed the row already (in this transaction): then this updates nothing.
        open_rows.update(ended_at=Now(), outcome=to, reason=reason[:500], **lease)
    elif to == Status.DISPATCHED:
        open_rows.update(ended_at=Now(), reason="superseded")  # none expected; never two open
        Attempt.objects.create(
            job_id=job.pk,
            number=updates.get("attempt", job.attempt),
            node=updates.get("node", job.node),
            gpu_indices=updates.get("gpu_indices", job.gpu_indices),
            lease_token=updates.get("lease_token", job.lease_token),
            dispatched_at=Now(),
            **lease,
        )
    elif from_status == Status.DISPATCHED and to == Status.RUNNING:
        # The job's compare-and-set above already proved the token current (a take-over changes both
        # rows in one transaction); a job dispatched without a row (made by hand) gets one now.
        token = token or job.lease_token
        if not open_rows.filter(lease_token=token).update(started_at=Now(), heartbeat_at=Now(), **lease):
            Attempt.objects.create(
                job_id=job.pk,
                number=updates.get("attempt", job.attempt),
                node=job.node,
                gpu_indices=job.gpu_indices,
                lease_token=token,
                started_at=Now(),
                heartbeat_at=Now(),
                **lease,
            )


def record_creation(job: Job, *, by=None, reason: str = "submitted") -> JobStateTransition:
    """Log the first status of a new job (the one status not reached by a transition); returns its row."""
    first = JobStateTransition.objects.create(
        job=job, from_status="", to_status=job.status, attempt=job.attempt, triggered_by=by, reason=reason
    )
    events.emit_job(job, from_status="", reason=reason)
    if job.status == Status.PENDING:
        ticker.request_tick()
    return first


def record_creations(jobs: list[Job], *, by=None, reasons: list[str]) -> None:
    """`record_creation` for many new jobs at once (a bulk submission): one insert of their transition
    rows, one of their events, and one tick requested for them all."""
    now = timezone.now()
    fastinsert.insert_values(
        JobStateTransition,
        [
            {
                "job_id": job.pk,
                "from_status": "",
                "to_status": job.status,
                "attempt": job.attempt,
                "at": now,
                "triggered_by_id": by.pk if by is not None else None,
                "reason": why[:500],
            }
            for job, why in zip(jobs, reasons, strict=True)
        ],
    )
    events.emit_jobs(jobs, from_status="", reasons=reasons)
    if any(job.status == Status.PENDING for job in jobs):
        ticker.request_tick()
