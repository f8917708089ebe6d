"""Asking a running job's executor to stop it (cancel, pause, preempt), and what each stop becomes."""

from django.utils import timezone

from scheduling.models import Job, StopRequest, WaitReason
from scheduling.states import Status

IDLE_ERROR = "idle: its GPUs stayed below the idle_reclaim policy's utilization; stopped to free them"


def request_stop(job: Job, kind: StopRequest, *, by, reason: str = "") -> bool:
    """Flag a running job; its executor stops it (SIGTERM, grace, SIGKILL) and records the outcome.
    A stop already requested is not replaced. Returns whether this call set the request."""
    return bool(
        Job.objects.filter(pk=job.pk, status=Status.RUNNING, stop_request="").update(
            stop_request=kind,
            stop_requested_at=timezone.now(),
            stop_requested_by=by,
            stop_reason=reason[:300],
        )
    )


def stopped_outcome(job: Job, kind: str) -> tuple[Status, dict]:
    """The status and fields a job takes once its processes are stopped for `kind`."""
    if kind == StopRequest.CANCEL:
        return Status.CANCELLED, {}
    if kind == StopRequest.IDLE:  # idle-GPU reclaim (scheduling.reclaim): ended for good, never retried
        return Status.CANCELLED, {"error": IDLE_ERROR}
    rerun = {"attempt": job.attempt + 1, "started_at": None, "lease_token": ""}
    if kind == StopRequest.PAUSE:
        return Status.PAUSED, {**rerun, "wait_reason": WaitReason.PAUSED, "wait_detail": ""}
    return Status.PENDING, rerun  # preempt: back in the queue, a new attempt
