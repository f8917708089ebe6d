"""Idle-GPU reclaim (the `idle_reclaim` policy, like dstack's utilization_policy): a running job whose GPUs
all read below the policy's utilization for `idle_minutes` is warned (an `idle_warning` notice to its
owner); `grace_minutes` after the warning it is stopped with reason `idle` (it ends `cancelled` with
`stop_request` "idle") or, with `action: report`, reported once (an `idle_report` notice and a log line).
A single busy reading starts it all over. Jobs of a template with `allow_idle` are never watched.

Each node checks its own jobs right after it refreshes its GPU readings (gpuq_node), so a check reads
readings just taken and never runs inside a tick; what it knows lives in IdleWatch rows, so a restarted
node carries on where it stopped."""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from gpus.models import Allocation, Node
from scheduling import events, policies
from scheduling.models import IdleWatch, Job, PolicyType, StopRequest
from scheduling.states import Status
from scheduling.stops import request_stop

log = logging.getLogger("gpuq.reclaim")


@dataclass
class Reading:
    """A running job's GPUs at the node's latest refresh: the busiest one's utilization, or None when one
    of them has no reading taken since the job started (unknown: the job's idleness is left as it is)."""

    attempt: int
    allow_idle: bool
    utilization: int | None
    gpus: int = 0


def idle_check(*, node: Node, now: datetime | None = None) -> dict[str, list[int]]:
    """Apply the idle_reclaim policy to the node's running jobs from their GPUs' latest readings. Returns
    the ids of the jobs it warned, stopped and reported in this call."""
    now = now or timezone.now()
    done: dict[str, list[int]] = {"warned": [], "stopped": [], "reported": []}
    # Only running jobs are watched: whatever else left `running` is forgotten (the table's retention).
    IdleWatch.objects.exclude(job__status=Status.RUNNING).delete()
    rule = policies.enabled_configs().get(PolicyType.IDLE_RECLAIM)
    if rule is None:
        IdleWatch.objects.filter(job__node=node).delete()  # switched off: switched on again starts afresh
        return done
    readings = _readings(node)
    watches = {w.job_id: w for w in IdleWatch.objects.filter(job_id__in=readings)}
    idle_after = timedelta(minutes=rule["idle_minutes"])
    grace = timedelta(minutes=rule["grace_minutes"])
    for job_id, reading in readings.items():
        watch = watches.get(job_id)
        if watch is not None and (reading.allow_idle or watch.attempt != reading.attempt):
            watch.delete()
            watch = None
        if reading.allow_idle or reading.utilization is None:
            continue
        if reading.utilization >= rule["utilization_percent"]:
            if watch is not None:
                watch.delete()  # one busy reading resets the clock (and a warning given)
            continue
        if watch is None:
            watch = IdleWatch.objects.create(
                job_id=job_id,
                attempt=reading.attempt,
                idle_since=now,
                utilization_percent=reading.utilization,
                gpus=reading.gpus,
            )
        elif watch.utilization_percent != reading.utilization or watch.gpus != reading.gpus:
            IdleWatch.objects.filter(pk=watch.pk).update(
                utilization_percent=reading.utilization, gpus=reading.gpus
            )
        if watch.warned_at is None:
            if now - watch.idle_since >= idle_after and _warn(watch, rule, now):
                done["warned"].append(job_id)
        elif watch.acted_at is None and now - watch.warned_at >= grace and _act(watch, rule, now):
            done["stopped" if rule["action"] == "stop" else "reported"].append(job_id)
    return done


def _readings(node: Node) -> dict[int, Reading]:
    """The node's running jobs and their GPUs' latest readings, in one query."""
    rows = (
        Allocation.objects.active()
        .filter(job__status=Status.RUNNING, job__node=node, job__started_at__isnull=False)
        .values_list(
            "job_id",
            "job__attempt",
            "job__started_at",
            "job__template__allow_idle",
            "gpu__utilization_percent",
            "gpu__readings_at",
        )
    )
    readings: dict[int, Reading] = {}
    for job_id, attempt, started_at, allow_idle, utilization, readings_at in rows:
        reading = readings.setdefault(job_id, Reading(attempt, bool(allow_idle), 0))
        reading.gpus += 1
        fresh = utilization is not None and readings_at is not None and readings_at >= started_at
        if not fresh:
            reading.utilization = None
        elif reading.utilization is not None:
            reading.utilization = max(reading.utilization, utilization)
    return readings


def _describe(rule: dict, minutes: float) -> str:
    return f"its GPUs have been below {rule['utilization_percent']:g}% utilization for {minutes:g} min"


def _warn(watch: IdleWatch, rule: dict, now: datetime) -> bool:
    """Warn the owner once (the compare-and-set on `warned_at` keeps two checks from warning twice)."""
    then = "stopped" if rule["action"] == "stop" else "reported to the admins"
    detail = (
        f"{_describe(rule, rule['idle_minutes'])}; it will be {then} in {rule['grace_minutes']:g} min "
        "unless they get busy"
    )
    with transaction.atomic():
        if not IdleWatch.objects.filter(pk=watch.pk, warned_at__isnull=True).update(warned_at=now):
            return False
        job = Job.objects.get(pk=watch.job_id)
        events.emit_notice(job, "idle_warning", detail)
    log.info("job %s: idle warning (%s)", watch.job_id, detail)
    return True


def _act(watch: IdleWatch, rule: dict, now: datetime) -> bool:
    """Stop the job with reason idle (its executor stops it and records it `cancelled`), or report it."""
    minutes = (now - watch.idle_since).total_seconds() / 60
    detail = _describe(rule, round(minutes, 1))
    with transaction.atomic():
        if not IdleWatch.objects.filter(pk=watch.pk, acted_at__isnull=True).update(acted_at=now):
            return False
        job = Job.objects.get(pk=watch.job_id)
        if rule["action"] == "stop":
            request_stop(job, StopRequest.IDLE, by=None, reason=f"idle: {detail}")
        else:
            events.emit_notice(job, "idle_report", f"{detail} (reported only: action is report)")
    log.warning(
        "job %s: %s; %s", watch.job_id, detail, "stopping it" if rule["action"] == "stop" else "reported"
    )
    return True
