"""Rescue by lease: jobs whose executor stopped heartbeating are stopped for sure, then requeued or failed.

Rescue is by heartbeat, never by elapsed time alone. Before a job is requeued its old process must be
gone: on this machine we check and kill it by (boot id, pid, start time); a process recorded under
another boot id died with that boot.
"""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from scheduling import procs
from scheduling.models import Job
from scheduling.states import HOLDS_GPUS, Status
from scheduling.stops import stopped_outcome
from scheduling.transitions import InvalidTransition, TransitionConflict, transition

log = logging.getLogger("gpuq.reaper")


def reap(now: datetime | None = None) -> int:
    """Recover every dispatched or running job whose lease expired. Returns how many were recovered."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GPUQ_LEASE_SECONDS)
    stale = Job.objects.filter(status__in=HOLDS_GPUS, heartbeat_at__lt=cutoff)
    return sum(
        recover(
            job,
            reason=f"executor lost: no heartbeat for {settings.GPUQ_LEASE_SECONDS:g} s",
            stale_before=cutoff,
        )
        for job in stale
    )


def reconcile_node(node_name: str, *, executors_gone: bool = False) -> int:
    """Recover the jobs the database shows dispatched or running on this node whose executor is gone.

    At start-up (`executors_gone=False`) no executor of this node process runs yet, but one of an earlier
    cluster may have outlived it: a job whose process is alive with a fresh heartbeat is left to finish.
    At shutdown (`executors_gone=True`) the node has just killed its own cluster, so every such job is
    recovered now (its process, if still dying, is stopped first) rather than one lease later.
    """
    recovered = 0
    fresh_after = timezone.now() - timedelta(seconds=settings.GPUQ_LEASE_SECONDS)
    reason = "node stopped" if executors_gone else "node restarted: its executor is gone"
    for job in Job.objects.filter(status__in=HOLDS_GPUS, node__name=node_name):
        alive = procs.is_same_process(job.pid, job.pid_start_time, job.boot_id)
        if not executors_gone and alive and job.heartbeat_at and job.heartbeat_at >= fresh_after:
            continue
        recovered += recover(job, reason=reason)
    return recovered


def recover(job: Job, *, reason: str, stale_before: datetime | None = None) -> bool:
    """Stop what is left of the job's attempt, then requeue it (attempt + 1) or fail it.

    The compare-and-set holds the attempt's token (and, for the reaper, the stale heartbeat), so an
    executor that finished or heartbeated meanwhile wins and nothing happens here.
    """
    if procs.is_same_process(job.pid, job.pid_start_time, job.boot_id):
        log.warning("job %s: stopping the orphaned process %s", job.pk, job.pid)
        procs.stop_group(job.pid, settings.GPUQ_KILL_GRACE_SECONDS)
    guard = Q(heartbeat_at__lt=stale_before) if stale_before else None
    # A recovered job runs alone: a batch whose executor was lost is not formed again.
    common = {
        "token": job.lease_token,
        "guard": guard,
        "pid": None,
        "lease_token": "",
        "batch_role": "",
        "batch_leader": None,
    }
    try:
        if job.stop_request:
            # It was being stopped anyway: finish what was asked (cancel, pause or preempt).
            status, fields = stopped_outcome(job, job.stop_request)
            why = f"{job.stop_reason or job.stop_request} ({reason})"
            transition(job, status, reason=why, **{**common, **fields})
        elif job.faults + 1 < job.max_attempts:
            transition(
                job,
                Status.PENDING,
                reason=reason,
                attempt=job.attempt + 1,
                faults=job.faults + 1,
                started_at=None,
                **common,
            )
        else:
            transition(
                job,
                Status.FAILED,
                reason=f"{reason}; attempts spent ({job.faults + 1}/{job.max_attempts})",
                error=reason,
                **common,
            )
    except (TransitionConflict, InvalidTransition):
        return False
    log.warning("job %s: recovered (%s)", job.pk, reason)
    return True
