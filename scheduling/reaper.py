"""Rescue by lease: attempts whose lease ended are taken over (compare-and-set), then requeued or failed.

Rescue is by heartbeat, never by elapsed time alone, and every time is the database's. A running attempt
is taken over only when its last heartbeat is older than lease + kill grace + margin
(scheduling.leases): its executor stopped the job at `lease` and the job is gone by then. A dispatched
attempt that no executor claimed within GPUQ_DISPATCH_TIMEOUT_SECONDS is requeued as a lost dispatch,
which is not a fault: it never ran. The take-over claims first (the attempt row, then the job by its
token, in one transaction); only the node that owns an attempt judges and stops its processes, and it
does so with SIGKILL before that transaction commits (before the GPUs are free), never with a grace wait
that would stall its loop. Other nodes judge a node only by its heartbeats.
"""

import logging
import signal
import time
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper, Q
from django.db.models.functions import Now

from scheduling import leases, procs
from scheduling.models import Attempt, Job
from scheduling.states import Status
from scheduling.stops import stopped_outcome
from scheduling.transitions import InvalidTransition, TransitionConflict, transition

log = logging.getLogger("gpuq.reaper")


def ago(seconds: float):
    """The database's clock minus `seconds`, for comparisons inside a query."""
    return ExpressionWrapper(Now() - timedelta(seconds=seconds), output_field=DateTimeField())


def reap(*, node_name: str = "") -> int:
    """Take over every attempt whose lease ended. Processes are judged only on `node_name`'s attempts
    (the caller's own node). Returns how many attempts were taken over."""
    margins = leases.current()
    silent = Q(started_at__isnull=False, heartbeat_at__lt=ago(margins.reap_after))
    unclaimed = Q(started_at__isnull=True, dispatched_at__lt=ago(settings.GPUQ_DISPATCH_TIMEOUT_SECONDS))
    taken = 0
    for attempt in Attempt.objects.filter(silent, ended_at__isnull=True).select_related("job", "node"):
        reason = f"executor lost: no heartbeat for {margins.reap_after:g} s"
        taken += take_over(attempt, reason=reason, still=silent, own=_own(attempt, node_name))
    for attempt in Attempt.objects.filter(unclaimed, ended_at__isnull=True).select_related("job", "node"):
        where = attempt.node.name if attempt.node_id else "its node"
        reason = f"dispatch lost: not claimed on {where} within {settings.GPUQ_DISPATCH_TIMEOUT_SECONDS:g} s"
        taken += take_over(attempt, reason=reason, still=unclaimed, fault=False)
    return taken


def reconcile_node(node_name: str, *, executors_gone: bool = False) -> int:
    """Take over the open attempts of this node whose executor is gone (this node judges its own).

    At start-up (`executors_gone=False`) no executor of this node process runs yet, but one of an earlier
    cluster may have outlived it: an attempt whose process is alive with a fresh heartbeat is left to
    finish; a process recorded under another boot id died with that boot. A dispatched attempt not yet
    claimed is requeued without counting a fault. An attempt whose executor kept an outcome on disk (it
    died during a database outage, after its job ended) gets that outcome recorded instead. At shutdown
    (`executors_gone=True`) the node has just stopped its own cluster, so every attempt is taken over now
    rather than one lease later.
    """
    taken = 0
    reason = "node stopped" if executors_gone else "node restarted: its executor is gone"
    mine = Attempt.objects.filter(node__name=node_name, ended_at__isnull=True).select_related("job", "node")
    fresh = set(mine.filter(heartbeat_at__gte=ago(settings.GPUQ_LEASE_SECONDS)).values_list("pk", flat=True))
    for attempt in mine:
        alive = procs.is_same_process(attempt.pid, attempt.pid_start_time, attempt.boot_id)
        if not executors_gone and alive and attempt.pk in fresh:
            continue
        if claimed := attempt.started_at is not None:
            from scheduling.executor import record_kept_outcome

            if not alive and record_kept_outcome(attempt.job, attempt.lease_token):
                continue  # the job had ended; its executor died before the database was back
        taken += take_over(attempt, reason=reason, own=True, fault=claimed)
    return taken


def _own(attempt: Attempt, node_name: str) -> bool:
    return bool(node_name) and attempt.node_id is not None and attempt.node.name == node_name


def take_over(
    attempt: Attempt, *, reason: str, still: Q | None = None, own: bool = False, fault=True
) -> bool:
    """Close the open attempt (if it still meets `still`), move its job on, and, on the owning node,
    SIGKILL what is left of its process before the GPUs are released. The job goes where a stop it was
    given was heading (cancel, pause, preempt), else back to the queue as attempt + 1, or failed when a
    fault leaves no attempts. False when the attempt or its job moved meanwhile (an executor that
    heartbeated, claimed or finished wins)."""
    job = attempt.job
    status, fields, why = next_after_loss(job, reason, fault=fault)
    try:
        with transaction.atomic():
            rows = Attempt.objects.filter(pk=attempt.pk, ended_at__isnull=True)
            if rows.filter(still or Q()).update(ended_at=Now(), outcome=status, reason=why[:500]) != 1:
                return False
            transition(job, status, token=attempt.lease_token, reason=why, **fields)
            if own:
                _kill_leftovers(attempt)
    except (TransitionConflict, InvalidTransition):
        return False
    log.warning("job %s: attempt %s taken over (%s)", job.pk, attempt.number, why)
    return True


def next_after_loss(job: Job, reason: str, *, fault: bool) -> tuple[Status, dict, str]:
    """Where a job goes when its attempt is lost (taken over here, or a gang's node lost, scheduling.gang):
    the stop it was given, else back to the queue as attempt + 1, or failed once its attempts are spent."""
    common = {"lease_token": "", "batch_role": "", "batch_leader": None}  # a rescued job runs alone
    if job.stop_request:
        # It was being stopped anyway: finish what was asked (cancel, pause or preempt).
        status, fields = stopped_outcome(job, job.stop_request)
        return status, {**common, **fields}, f"{job.stop_reason or job.stop_request} ({reason})"
    faults = job.faults + (1 if fault else 0)
    if faults < job.max_attempts:
        fields = {**common, "attempt": job.attempt + 1, "faults": faults, "started_at": None}
        return Status.PENDING, fields, reason
    why = f"{reason}; attempts spent ({faults}/{job.max_attempts})"
    return Status.FAILED, {**common, "error": reason, "faults": faults}, why


def _kill_leftovers(attempt: Attempt) -> None:
    """SIGKILL the attempt's process group if it still runs on this machine, and wait (briefly) until it
    is gone. No grace here: the job had it from its executor, or lost it with its executor."""
    if not procs.is_same_process(attempt.pid, attempt.pid_start_time, attempt.boot_id):
        return
    log.warning("job %s: killing the leftover process group %s", attempt.job_id, attempt.pid)
    procs.signal_group(attempt.pid, signal.SIGKILL)
    deadline = time.monotonic() + 2.0
    while procs.group_alive(attempt.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
