"""The live stream: events written in the transaction of the change they tell (ticks: scheduling.ticker)."""

from django.db import transaction
from django.utils import timezone

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

    _emit(
        kind=Event.Kind.JOB,
        job_id=job.pk,
        data={**job_fields(job), "from": str(from_status), "reason": reason},
    )


def emit_jobs(jobs, *, from_status: str, reasons: list[str]) -> None:
    """`emit_job` for many jobs, in one insert."""
    from scheduling import fastinsert
    from scheduling.models import Event

    now = timezone.now()
    fastinsert.insert_values(
        Event,
        [
            {
                "at": now,
                "kind": Event.Kind.JOB,
                "job_id": job.pk,
                "data": {**job_fields(job), "from": str(from_status), "reason": why},
            }
            for job, why in zip(jobs, reasons, strict=True)
        ],
    )


def emit_notice(job, notice: str, detail: str = "") -> None:
    """A job event that changes no status but that the job's owner (or its approvers, or the admins) should
    hear about: `notice` names what happened ("idle_warning", "stalled", "waiting_long", "quota_80", ...),
    `detail` says it in words. Notifications are delivered from these events as from status changes."""
    from scheduling.models import Event

    _emit(
        kind=Event.Kind.JOB,
        job_id=job.pk,
        data={**job_fields(job), "from": str(job.status), "reason": detail, "notice": notice},
    )


def emit_progress(job_id: int, progress: dict) -> None:
    from scheduling.models import Event

    _emit(kind=Event.Kind.PROGRESS, job_id=job_id, data={"id": job_id, "progress": progress})


def emit_node(name: str, **data) -> None:
    from scheduling.models import Event

    _emit(kind=Event.Kind.NODE, data={"name": name, **data})


def emit_queue(changed: int) -> None:
    from scheduling.models import Event

    _emit(kind=Event.Kind.QUEUE, data={"changed": changed})


def _emit(**fields) -> None:
    """Write an event; on SQLite also wake this process's relay, and ring every other process's, when it
    commits (PostgreSQL's NOTIFY, sent by the database with the commit, wakes the relays of every
    process)."""
    from scheduling.models import Event

    Event.objects.create(**fields)
    connection = transaction.get_connection()
    if connection.vendor == "sqlite" and not any(e[1] is _poke_relay for e in connection.run_on_commit):
        transaction.on_commit(_poke_relay)


def _poke_relay() -> None:
    from django.db import connection

    from scheduling import doorbell
    from scheduling.relay import relay

    relay.poke()
    doorbell.ring_all(str(connection.settings_dict["NAME"]), doorbell.EVENTS)


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
