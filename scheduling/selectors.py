"""Reads: the planner's snapshot, the queue as users see it, and which jobs a user may see."""

from dataclasses import dataclass

from django.db.models import QuerySet

from accounts.permissions import is_admin
from gpus.models import Allocation, Gpu, NodeStatus
from gpus.placement import NodeFree
from scheduling.models import Job
from scheduling.planner import PendingJob, Snapshot, queue_key
from scheduling.states import HOLDS_GPUS, Status


def snapshot() -> Snapshot:
    """Pending jobs and free healthy GPUs of online nodes, in two queries."""
    pending = tuple(
        PendingJob(id=row[0], gpu_count=row[1], priority=row[2], submitted_at=row[3])
        for row in Job.objects.filter(status=Status.PENDING).values_list(
            "id", "gpu_count", "priority", "submitted_at"
        )
    )
    held = Allocation.objects.active().values("gpu_id")
    free: dict[str, list[int]] = {}
    for node_name, index in (
        Gpu.objects.filter(node__status=NodeStatus.ONLINE, healthy=True)
        .exclude(id__in=held)
        .values_list("node__name", "index")
    ):
        free.setdefault(node_name, []).append(index)
    nodes = tuple(NodeFree(name, tuple(indices)) for name, indices in sorted(free.items()))
    return Snapshot(pending=pending, nodes=nodes)


def largest_node_gpu_count() -> int:
    counts: dict[int, int] = {}
    for node_id in (
        Gpu.objects.filter(healthy=True)
        .exclude(node__status=NodeStatus.OFFLINE)
        .values_list("node_id", flat=True)
    ):
        counts[node_id] = counts.get(node_id, 0) + 1
    return max(counts.values(), default=0)


def visible_jobs(user) -> QuerySet[Job]:
    """The jobs whose details `user` may read: their own, or all of them for admins."""
    jobs = Job.objects.select_related("owner", "node", "template")
    return jobs if is_admin(user) else jobs.filter(owner=user)


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    position: int | None  # 1-based among pending jobs; None for running ones


def queue() -> tuple[list[QueueEntry], list[QueueEntry]]:
    """(running, pending): jobs holding GPUs, then pending jobs in the planner's own order."""
    active = list(
        Job.objects.filter(status__in=HOLDS_GPUS).select_related("owner", "node").order_by("started_at", "id")
    )
    pending = list(Job.objects.filter(status=Status.PENDING).select_related("owner"))
    pending.sort(key=lambda job: queue_key(PendingJob(job.id, job.gpu_count, job.priority, job.submitted_at)))
    return (
        [QueueEntry(job, None) for job in active],
        [QueueEntry(job, position) for position, job in enumerate(pending, start=1)],
    )
