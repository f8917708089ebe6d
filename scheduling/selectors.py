"""Reads: the planner's snapshot, the queue as users see it, and which jobs a user may see."""

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db.models import Count, F, Max, QuerySet, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from accounts import permissions
from gpus.models import Allocation, Gpu, Node, NodeStatus
from gpus.placement import GpuSpec, Needs, NodeFree
from scheduling import batching, gang, planner, planstore, policies, usage
from scheduling.models import Attempt, GpuQuota, Job, JobStateTransition, PolicyType, Sweep
from scheduling.states import HOLDS_GPUS, TERMINAL, Status

_PENDING_FIELDS = (
    "id",
    "gpu_count",
    "priority",
    "submitted_at",
    "owner_id",
    "team_id",
    "queue_order",
    "off_peak_only",
    "time_limit_seconds",
    "nodes",
    "min_gpu_memory_mb",
    "gpu_model",
    "target",
)
# JSON columns, read as their text: nearly every job has the same few values ("[]", "{}"), so each
# distinct text is parsed once per snapshot instead of once per job (at 10,000 waiting, parsing three
# JSON values per job was a fifth of a tick).
_PENDING_JSON = {
    "resources_text": Cast(F("resources"), TextField()),
    "device_ids_text": Cast(F("device_ids"), TextField()),
    "node_labels_text": Cast(F("node_labels"), TextField()),
}


def _pending(jobs: QuerySet[Job]) -> tuple[tuple[planner.PendingJob, ...], frozenset[int], frozenset[int]]:
    rows = list(jobs.annotate(**_PENDING_JSON).values_list(*_PENDING_FIELDS, *_PENDING_JSON))
    deps: dict[int, list[int]] = {}
    for job_id, dep_id in Job.depends_on.through.objects.filter(from_job__in=jobs.values("id")).values_list(
        "from_job_id", "to_job_id"
    ):
        deps.setdefault(job_id, []).append(dep_id)
    # Expiry and ageing count from when a job became able to wait: its last release into the queue
    # (start time reached, approved, resumed), if after submission.
    released = dict(
        JobStateTransition.objects.filter(
            job__in=jobs.values("id"), to_status=Status.PENDING, from_status__in=list(HELD)
        )
        .values_list("job_id")
        .annotate(at=Max("at"))
    )
    parsed: dict[str | None, object] = {}
    needs: dict[tuple, Needs] = {}

    def js(text: str | None):
        if text not in parsed:
            parsed[text] = None if text is None else json.loads(text)
        return parsed[text]

    def needs_of(memory, model, target, device_ids: str | None, labels: str | None) -> Needs:
        key = (memory, model, target, device_ids, labels)
        if key not in needs:
            needs[key] = Needs.of(memory, model, js(device_ids), js(labels), target)
        return needs[key]

    pending = tuple(
        planner.PendingJob(
            id=r[0],
            gpu_count=r[1],
            priority=r[2],
            submitted_at=r[3],
            owner=r[4],
            team=r[5],
            order=r[6],
            off_peak_only=r[7],
            resources=tuple(js(r[13]) or ()),
            time_limit=r[8],
            depends_on=tuple(sorted(deps.get(r[0], ()))),
            needs=needs_of(r[10], r[11], r[12], r[14], r[15]),
            waiting_since=released.get(r[0]),
            nodes=r[9],
        )
        for r in rows
    )
    wanted = {d for ids in deps.values() for d in ids}
    completed, dead = set(), set()
    for dep_id, status in Job.objects.filter(id__in=wanted).values_list("id", "status"):
        if status == Status.COMPLETED:
            completed.add(dep_id)
        elif status in TERMINAL:
            dead.add(dep_id)
    return pending, frozenset(completed), frozenset(dead)


def running_jobs() -> tuple[planner.RunningJob, ...]:
    parts = gang.running_parts()
    return tuple(
        planner.RunningJob(
            id=r[0],
            node=r[1] or "",
            gpu_count=r[2],
            started_at=r[3] or r[4],
            owner=r[5],
            team=r[6],
            priority=r[7],
            resources=tuple(r[8] or ()),
            time_limit=r[9],
            preemptible=r[10],
            stopping=bool(r[11]),
            gpus=tuple(r[12] or ()),
            parts=parts.get(r[0], ()),
        )
        # A batch is one running job: its members hold no GPUs of their own.
        for r in Job.objects.filter(status__in=HOLDS_GPUS)
        .exclude(batch_role=batching.MEMBER)
        .values_list(
            "id",
            "node__name",
            "gpu_count",
            "started_at",
            "updated_at",
            "owner_id",
            "team_id",
            "priority",
            "resources",
            "time_limit_seconds",
            "preemptible",
            "stop_request",
            "gpu_indices",
        )
    )


def free_gpus() -> tuple[NodeFree, ...]:
    """Every online, undrained node (busy ones too: their GPUs come back in plans of the future) with
    its free healthy GPUs, the specs of all its healthy GPUs, its labels and whether it is local."""
    held = set(Allocation.objects.active().values_list("gpu_id", flat=True))
    nodes = {
        name: {"free": [], "specs": {}, "labels": labels or {}, "local": local}
        for name, labels, local in Node.objects.filter(status=NodeStatus.ONLINE, drained=False).values_list(
            "name", "labels", "local"
        )
    }
    for gpu_id, node_name, index, memory, model, foreign in Gpu.objects.filter(
        node__name__in=nodes.keys(), healthy=True
    ).values_list("id", "node__name", "index", "memory_mb", "model_name", "foreign_pids"):
        node = nodes[node_name]
        node["specs"][index] = GpuSpec(memory, model)
        if gpu_id not in held and not foreign:  # foreign: a process that is not a gpuq job uses it
            node["free"].append(index)
    return tuple(
        NodeFree(name, tuple(sorted(n["free"])), n["specs"], n["labels"], n["local"])
        for name, n in sorted(nodes.items())
    )


def all_nodes() -> tuple[NodeFree, ...]:
    """Every registered node with all its healthy GPUs as if free: what could ever run a job (one
    query: every submission reads it)."""
    nodes: dict[str, NodeFree] = {}
    for name, labels, local, index, memory, model, healthy in Node.objects.values_list(
        "name", "labels", "local", "gpus__index", "gpus__memory_mb", "gpus__model_name", "gpus__healthy"
    ).order_by("name", "gpus__index"):
        if name not in nodes:
            nodes[name] = NodeFree(name, (), {}, labels or {}, local)
        if healthy:
            nodes[name].specs[index] = GpuSpec(memory, model)
    return tuple(nodes.values())


def snapshot(now: datetime | None = None, *, pending: QuerySet[Job] | None = None) -> planner.Snapshot:
    """Everything the planner needs, in a handful of aggregated queries."""
    now = now or timezone.now()
    configs = policies.enabled_configs()
    waiting, completed, dead = _pending(
        pending if pending is not None else Job.objects.filter(batching.planned(), status=Status.PENDING)
    )
    user_quota, team_quota = {}, {}
    for user_id, team_id, daily, weekly in GpuQuota.objects.values_list(
        "user_id", "team_id", "daily_gpu_seconds", "weekly_gpu_seconds"
    ):
        quota = planner.Quota(daily, weekly)
        if user_id is not None:
            user_quota[user_id] = quota
        else:
            team_quota[team_id] = quota
    used = usage.Usage({}, {}, {}, {})
    if user_quota or team_quota:
        used = usage.quota_usage(
            now, configs.get(PolicyType.QUOTA, policies.DEFAULTS[PolicyType.QUOTA])["timezone"]
        )
    user_share, team_share = {}, {}
    if PolicyType.FAIR_SHARE in configs:
        user_share, team_share = usage.decayed_usage(now, configs[PolicyType.FAIR_SHARE]["half_life_hours"])
    return planner.Snapshot(
        pending=waiting,
        nodes=free_gpus(),
        running=running_jobs(),
        policies=policies.to_planner(configs),
        user_day=used.user_day,
        user_week=used.user_week,
        team_day=used.team_day,
        team_week=used.team_week,
        user_quota=user_quota,
        team_quota=team_quota,
        user_share=user_share,
        team_share=team_share,
        completed=completed,
        dead=dead,
        previous_reservations=planstore.reservations() if PolicyType.BACKFILL in configs else (),
    )


def visible_jobs(user) -> QuerySet[Job]:
    """The jobs whose details `user` may read (accounts.permissions decides: their own, their team's for
    leads, those shared with them, all for admins)."""
    return permissions.visible_jobs(user)


def visible_sweeps(user) -> QuerySet[Sweep]:
    """The sweeps `user` may watch (accounts.permissions decides)."""
    return permissions.visible_sweeps(user)


@dataclass(frozen=True)
class QueueEntry:
    job: Job
    position: int | None  # 1-based among pending jobs; None for others
    estimated_start: datetime | None = None  # expected; None: unknown (or a held job's start time)
    estimated_start_latest: datetime | None = None  # if every job runs to its hard bound; None: no bound
    estimated: bool = False  # simulated (a pending job among the first GPUQ_ESTIMATE_DEPTH): None is unknown


@dataclass(frozen=True)
class QueueView:
    running: list[QueueEntry]  # dispatched and running, oldest start first
    pending: list[QueueEntry]  # in the planner's order, with position and estimated start
    held: list[QueueEntry]  # scheduled, blocked and paused


HELD = (Status.SCHEDULED, Status.BLOCKED, Status.PAUSED)


def queue() -> QueueView:
    """The whole queue, unfiltered and unpaged, in the last tick's order (the admin's queue; pages and the
    API read one page of it through scheduling.listing)."""
    from scheduling import listing

    everything = listing.Filters()
    the_plan = listing.plan()
    return QueueView(
        running=listing.running(everything),
        pending=listing.pending_entries(listing.pending_ids(everything, the_plan), the_plan),
        held=listing.held_entries(listing.held_jobs(everything)),
    )


def _range(estimate) -> tuple[datetime | None, datetime | None, bool]:
    return (estimate.start, estimate.latest, True) if estimate is not None else (None, None, False)


def queue_stats(now: datetime | None = None, *, by_user: bool = True) -> dict:
    """Counts for the queue's header (seed 001's /queue/stats); the page's header shows no per-user
    counts (`by_user=False` leaves out their query, a join over every waiting job)."""
    now = now or timezone.now()
    by_status = dict(Job.objects.exclude(status__in=TERMINAL).values_list("status").annotate(n=Count("id")))
    per_user = dict(
        Job.objects.filter(status__in=[Status.PENDING, *HOLDS_GPUS])
        .values_list("owner__username")
        .annotate(n=Count("id"))
        if by_user
        else ()
    )
    recent = Job.objects.filter(started_at__gte=now - timedelta(hours=24)).values_list(
        "submitted_at", "started_at"
    )
    waits = [(started - submitted).total_seconds() for submitted, started in recent]
    configs = policies.enabled_configs()
    limits = configs.get(PolicyType.CONCURRENCY, {})
    stats = {
        "queue_depth": by_status.get(Status.PENDING, 0),
        "running": sum(by_status.get(s, 0) for s in HOLDS_GPUS),
        "max_concurrent": limits.get("max_concurrent"),
        "user_max_concurrent": limits.get("user_max_concurrent"),
        "team_max_concurrent": limits.get("team_max_concurrent"),
        "avg_wait_seconds": round(sum(waits) / len(waits), 1) if waits else None,
        "by_status": by_status,
        "by_user": per_user,
        "queue_paused": PolicyType.QUEUE_PAUSE in configs,
    }
    if not by_user:
        del stats["by_user"]
    return stats


def attempts(job: Job) -> list[Attempt]:
    """A job's attempts, oldest first, with their node (the job page and the API's job detail)."""
    return list(job.attempts.select_related("node").prefetch_related("parts__node").order_by("id"))


@dataclass(frozen=True)
class GpuRow:
    gpu: Gpu
    job: Job | None


def gpu_board() -> list[tuple[Node, list[GpuRow]]]:
    """Every node with its GPUs and the job holding each (the GPUs page)."""
    holders = {a.gpu_id: a.job for a in Allocation.objects.active().select_related("job", "job__owner")}
    nodes = []
    for node in Node.objects.prefetch_related("gpus").order_by("name"):
        nodes.append((node, [GpuRow(gpu, holders.get(gpu.pk)) for gpu in node.gpus.all()]))
    return nodes
