"""The pure planner: which waiting jobs start now, where, and why each other job waits.

Standard library only. `plan(snapshot, now)` reads frozen dataclasses and returns a Plan; it never
queries, logs or publishes, and it is deterministic.
"""

from dataclasses import dataclass, field
from datetime import datetime

from gpus.placement import NodeFree, place


@dataclass(frozen=True)
class PendingJob:
    id: int
    gpu_count: int
    priority: int
    submitted_at: datetime


@dataclass(frozen=True)
class Snapshot:
    pending: tuple[PendingJob, ...]
    nodes: tuple[NodeFree, ...]


@dataclass(frozen=True)
class Start:
    job_id: int
    node: str
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Wait:
    job_id: int
    reason: str  # a scheduling.models.WaitReason value
    detail: str


@dataclass(frozen=True)
class Plan:
    order: tuple[int, ...]  # pending job ids in queue order (position 1 first)
    starts: tuple[Start, ...] = ()
    waits: tuple[Wait, ...] = field(default=())


# Reason values, mirrored by scheduling.models.WaitReason (kept here so the planner stays pure).
PRIORITY = "priority"
RESOURCES = "resources"


def queue_key(job: PendingJob) -> tuple:
    """Higher priority first, then first come first served; the id breaks exact ties."""
    return (-job.priority, job.submitted_at, job.id)


def plan(snapshot: Snapshot, now: datetime) -> Plan:
    """Start jobs in queue order while they fit; the first that does not fit holds all behind it.

    Strict order keeps a large job from starving behind a stream of small ones (backfill, which lets a
    small job pass without delaying the large one, comes with the policies).
    """
    ordered = sorted(snapshot.pending, key=queue_key)
    free = {node.name: tuple(sorted(node.free)) for node in snapshot.nodes}
    starts: list[Start] = []
    waits: list[Wait] = []
    head: PendingJob | None = None
    for job in ordered:
        if head is not None:
            waits.append(Wait(job.id, PRIORITY, f"behind job {head.id}"))
            continue
        placement = place(job.gpu_count, [NodeFree(name, gpus) for name, gpus in free.items()])
        if placement is None:
            most = max((len(gpus) for gpus in free.values()), default=0)
            waits.append(
                Wait(
                    job.id,
                    RESOURCES,
                    f"needs {job.gpu_count} GPU(s) on one node; most free on a node: {most}",
                )
            )
            head = job
            continue
        starts.append(Start(job.id, placement.node, placement.gpus))
        free[placement.node] = tuple(g for g in free[placement.node] if g not in placement.gpus)
    return Plan(order=tuple(job.id for job in ordered), starts=tuple(starts), waits=tuple(waits))
