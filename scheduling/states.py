"""The job statuses and the pure table of allowed transitions between them."""

from django.db import models


class Status(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"  # start time in the future
    BLOCKED = "blocked", "Blocked"  # awaiting approval
    PENDING = "pending", "Pending"  # eligible, waiting for GPUs or a policy
    DISPATCHED = "dispatched", "Dispatched"  # GPUs assigned, handed to an executor
    RUNNING = "running", "Running"
    PAUSED = "paused", "Paused"  # held; resume returns it to pending (scheduled if its start is later)
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"
    REJECTED = "rejected", "Rejected"


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.REJECTED})
# While a job is in one of these it holds GPUs; leaving them releases its allocations.
HOLDS_GPUS = frozenset({Status.DISPATCHED, Status.RUNNING})
WAITING = frozenset({Status.SCHEDULED, Status.BLOCKED, Status.PENDING, Status.PAUSED})

ALLOWED: dict[Status, frozenset[Status]] = {
    Status.SCHEDULED: frozenset(
        {Status.PENDING, Status.BLOCKED, Status.PAUSED, Status.CANCELLED, Status.FAILED}
    ),
    Status.BLOCKED: frozenset({Status.PENDING, Status.SCHEDULED, Status.REJECTED, Status.CANCELLED}),
    Status.PENDING: frozenset({Status.DISPATCHED, Status.PAUSED, Status.CANCELLED, Status.FAILED}),
    # dispatched → pending/failed: the executor never took it (lost task or node); requeue or give up.
    Status.DISPATCHED: frozenset({Status.RUNNING, Status.PENDING, Status.CANCELLED, Status.FAILED}),
    # running → pending: retry, preemption or a lost executor, always with attempt + 1;
    # running → scheduled: a retry after a backoff (start_after set).
    Status.RUNNING: frozenset(
        {Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.PENDING, Status.PAUSED, Status.SCHEDULED}
    ),
    # paused → scheduled: resumed before its start_after; it keeps waiting for it.
    Status.PAUSED: frozenset({Status.PENDING, Status.SCHEDULED, Status.CANCELLED}),
    Status.COMPLETED: frozenset(),
    Status.FAILED: frozenset(),
    Status.CANCELLED: frozenset(),
    Status.REJECTED: frozenset(),
}


def is_allowed(from_status: str, to_status: str) -> bool:
    return to_status in ALLOWED.get(Status(from_status), frozenset())
