"""After-commit side effects: ticks requested by status changes (the event-driven half of ticking)."""

import logging
import threading

from django.conf import settings
from django.db import transaction

log = logging.getLogger("gpuq.events")
_local = threading.local()


def ticks_enabled() -> bool:
    return getattr(settings, "GPUQ_EVENT_TICKS", True)


def request_tick() -> None:
    """Run one tick after the current transaction commits; several requests in one commit give one tick.

    The tick runs inline in the process that made the change (web request, executor, node loop), so a
    job submitted while a GPU is free is dispatched before the submit call returns. Requests made while
    a tick is applying its own plan are dropped: that tick already sees the state it is changing.
    """
    if not ticks_enabled() or getattr(_local, "ticking", False):
        return
    connection = transaction.get_connection()
    # A rolled-back transaction drops its callbacks, so a pending request is one still in this list.
    if any(entry[1] is _run_requested_tick for entry in connection.run_on_commit):
        return
    transaction.on_commit(_run_requested_tick)


def _run_requested_tick() -> None:
    from scheduling.tick import tick

    try:
        tick()
    except Exception:  # the periodic tick will retry; never fail the caller's committed work
        log.exception("event-driven tick failed")


class ticking:
    """Context manager marking this thread as inside a tick."""

    def __enter__(self):
        _local.ticking = True

    def __exit__(self, *exc):
        _local.ticking = False


# --- the live stream (scheduling.models.Event), written inside the caller's transaction ---------------


def job_fields(job) -> dict:
    """What a job event carries: the queue's fields and the progress the job reports. A receiver who may
    not read the job gets only its PUBLIC_JOB_FIELDS (see `for_receiver`)."""
    return {
        "id": job.pk,
        "name": job.name,
        "owner": job.owner.username,
        "status": str(job.status),
        "priority": job.priority,
        "gpu_count": job.gpu_count,
        "node": job.node.name if job.node_id else None,
        "gpu_indices": job.gpu_indices,
        "attempt": job.attempt,
        "wait_reason": job.wait_reason,
        "wait_detail": job.wait_detail,
        "progress": job.progress,
    }


def emit_job(job, *, from_status: str, reason: str) -> None:
    from scheduling.models import Event

    Event.objects.create(
        kind=Event.Kind.JOB,
        job_id=job.pk,
        data={**job_fields(job), "from": str(from_status), "reason": reason},
    )


def emit_progress(job_id: int, progress: dict) -> None:
    from scheduling.models import Event

    Event.objects.create(kind=Event.Kind.PROGRESS, job_id=job_id, data={"id": job_id, "progress": progress})


def emit_node(name: str, **data) -> None:
    from scheduling.models import Event

    Event.objects.create(kind=Event.Kind.NODE, data={"name": name, **data})


def emit_queue(changed: int) -> None:
    from scheduling.models import Event

    Event.objects.create(kind=Event.Kind.QUEUE, data={"changed": changed})


# What the queue page shows everyone of a job. Everything else an event says about a job (its progress and
# metrics, the transition's reason, which may hold an error message or an operator's note, and any field
# added later) reaches only those who may read the job (scheduling.selectors.visible_jobs).
PUBLIC_JOB_FIELDS = frozenset(
    {
        "id",
        "name",
        "owner",
        "status",
        "from",
        "priority",
        "gpu_count",
        "node",
        "gpu_indices",
        "attempt",
        "wait_reason",
        "wait_detail",
    }
)


def for_receiver(message: dict, *, may_read: bool) -> dict | None:
    """An event message (`Event.as_message()`) as one receiver may see it, or None when it is not theirs
    to see. Events about no job (node, queue) go to everyone; events about a job go whole to those who may
    read it; to others a job event keeps only PUBLIC_JOB_FIELDS and a progress event is not sent."""
    from scheduling.models import Event

    if message["job"] is None or may_read:
        return message
    if message["kind"] != Event.Kind.JOB:
        return None
    return {**message, "data": {k: v for k, v in message["data"].items() if k in PUBLIC_JOB_FIELDS}}
