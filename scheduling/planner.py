"""The pure planner: which waiting jobs start now, where, and why each other job waits.

Standard library only. `plan(snapshot, now)` reads frozen dataclasses and returns a Plan; it never
queries, logs or publishes, and it is deterministic. The same function runs live (the tick), forward in
simulated time (estimated start times, scheduling.estimates) and in tests and benchmarks.

One walk over the waiting jobs in queue order applies every policy. A job held by a policy of its own
(dependency, quota, limit, window, conflict) does not hold back the jobs behind it; the first job that
does not fit holds every job behind it (strict order) unless backfill is on, in which case it gets a
reservation and a lower job may start only if, run to its time limit, it cannot delay any reservation.
"""

import enum
import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from gpus.placement import NodeFree, place

INF = math.inf


class Reason(enum.StrEnum):
    PRIORITY = "priority"
    RESOURCES = "resources"
    GLOBAL_LIMIT = "global_limit"
    USER_LIMIT = "user_limit"
    TEAM_LIMIT = "team_limit"
    QUOTA = "quota"
    OFF_PEAK = "off_peak"
    DEPENDENCY = "dependency"
    CONFLICT = "conflict"
    SERIAL = "serial"
    PREEMPTING = "preempting"
    QUEUE_PAUSED = "queue_paused"
    EXPIRED = "expired"


# --- policies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_concurrent: int | None = None
    user_max_concurrent: int | None = None
    team_max_concurrent: int | None = None


@dataclass(frozen=True)
class Ageing:
    threshold_seconds: float = 3600.0
    boost_per_hour: float = 1.0
    max_boost: float = 20.0

    def boost(self, waited_seconds: float) -> float:
        if waited_seconds <= self.threshold_seconds:
            return 0.0
        return min(self.max_boost, self.boost_per_hour * (waited_seconds - self.threshold_seconds) / 3600.0)


@dataclass(frozen=True)
class OffPeak:
    """A daily window [start, end) in a time zone; start > end wraps midnight (22:00–08:00)."""

    start: time = time(22, 0)
    end: time = time(8, 0)
    tz: str = "UTC"

    def contains(self, when: datetime) -> bool:
        local = when.astimezone(ZoneInfo(self.tz)).time()
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def next_start(self, when: datetime) -> datetime:
        local = when.astimezone(ZoneInfo(self.tz))
        opening = local.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        if opening <= local:
            opening += timedelta(days=1)
        return opening


@dataclass(frozen=True)
class Preemption:
    min_priority: int = 30  # a waiting job at or above this may preempt…
    max_victim_priority: int = 0  # …preemptible running jobs at or below this


@dataclass(frozen=True)
class Policies:
    limits: Limits = Limits()
    fair_share: bool = False
    ageing: Ageing | None = None
    off_peak: OffPeak | None = None
    serial: str | None = None  # None, "global" or "node"
    expiry_seconds: float | None = None
    backfill: bool = False
    backfill_depth: int = 100  # reservations made per plan (Slurm's bf_max_job_test)
    preemption: Preemption | None = None
    queue_paused: bool = False


@dataclass(frozen=True)
class Quota:
    daily: float | None = None  # GPU-seconds
    weekly: float | None = None


# --- snapshot and plan ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingJob:
    id: int
    gpu_count: int
    priority: int
    submitted_at: datetime
    owner: int = 0
    team: int | None = None
    order: float | None = None  # FIFO key; operators move it to reorder (default: submit time)
    off_peak_only: bool = False
    depends_on: tuple[int, ...] = ()
    resources: tuple[str, ...] = ()
    time_limit: float | None = None  # seconds

    @property
    def fifo(self) -> float:
        return self.order if self.order is not None else self.submitted_at.timestamp()


@dataclass(frozen=True)
class RunningJob:
    id: int
    node: str
    gpu_count: int
    started_at: datetime
    owner: int = 0
    team: int | None = None
    priority: int = 0
    resources: tuple[str, ...] = ()
    time_limit: float | None = None
    preemptible: bool = False
    stopping: bool = False  # already asked to stop (cancel, pause, preempt)


@dataclass(frozen=True)
class Snapshot:
    pending: tuple[PendingJob, ...]
    nodes: tuple[NodeFree, ...]
    running: tuple[RunningJob, ...] = ()
    policies: Policies = Policies()
    # GPU-seconds used in the current quota day and week, and decayed usage for fair share.
    user_day: Mapping[int, float] = field(default_factory=dict)
    user_week: Mapping[int, float] = field(default_factory=dict)
    team_day: Mapping[int, float] = field(default_factory=dict)
    team_week: Mapping[int, float] = field(default_factory=dict)
    user_quota: Mapping[int, Quota] = field(default_factory=dict)
    team_quota: Mapping[int, Quota] = field(default_factory=dict)
    user_share: Mapping[int, float] = field(default_factory=dict)
    team_share: Mapping[int, float] = field(default_factory=dict)
    completed: frozenset[int] = frozenset()  # dependencies that completed
    dead: frozenset[int] = frozenset()  # dependencies that failed, were cancelled or rejected


@dataclass(frozen=True)
class Start:
    job_id: int
    node: str
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Wait:
    job_id: int
    reason: str
    detail: str


@dataclass(frozen=True)
class Fail:
    job_id: int
    reason: str
    detail: str


@dataclass(frozen=True)
class Preempt:
    job_id: int  # the running job to stop and requeue
    for_job: int


@dataclass(frozen=True)
class Reservation:
    job_id: int
    node: str
    start: datetime
    gpu_count: int


@dataclass(frozen=True)
class Plan:
    order: tuple[int, ...]  # waiting job ids in queue order (position 1 first)
    starts: tuple[Start, ...] = ()
    waits: tuple[Wait, ...] = ()
    fails: tuple[Fail, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    reservations: tuple[Reservation, ...] = ()


# --- the walk -------------------------------------------------------------------------------------


class Profile:
    """Free GPUs of one node over time: free now, plus running jobs' GPUs coming back at their time
    limits, minus what this plan has booked (starts and reservations). Times are POSIX seconds."""

    __slots__ = ("free_now", "releases", "booked")

    def __init__(self, free_now: int, releases: list[tuple[float, int]]):
        self.free_now = free_now
        self.releases = sorted(releases)
        self.booked: list[tuple[float, float, int]] = []

    def free_at(self, t: float) -> int:
        free = self.free_now
        for end, gpus in self.releases:
            if end > t:
                break
            free += gpus
        for start, end, gpus in self.booked:
            if start <= t < end:
                free -= gpus
        return free

    def feasible(self, start: float, end: float, gpus: int) -> bool:
        # Free GPUs only drop where a booking begins, so the minimum over [start, end) is at one of those.
        points = [start] + [s for s, _, _ in self.booked if start < s < end]
        return all(self.free_at(p) >= gpus for p in points)

    def earliest(self, gpus: int, duration: float, now: float) -> float | None:
        candidates = {now}
        candidates.update(end for end, _ in self.releases if now < end < INF)
        candidates.update(end for _, end, _ in self.booked if now < end < INF)
        for t in sorted(candidates):
            if self.feasible(t, t + duration, gpus):
                return t
        return None

    def book(self, start: float, end: float, gpus: int) -> None:
        self.booked.append((start, end, gpus))


def queue_order(snapshot: Snapshot, now: datetime) -> list[PendingJob]:
    """Waiting jobs in the order the planner considers them: effective priority (with the ageing boost),
    then fair-share usage (lighter users first) when on, then FIFO (or the operators' order), then id."""
    policies = snapshot.policies
    ageing = policies.ageing
    now_ts = now.timestamp()
    user_share, team_share = snapshot.user_share, snapshot.team_share

    def key(job: PendingJob):
        priority = job.priority
        if ageing is not None:
            priority += ageing.boost(now_ts - job.submitted_at.timestamp())
        share = 0.0
        if policies.fair_share:
            share = user_share.get(job.owner, 0.0) + (team_share.get(job.team, 0.0) if job.team else 0.0)
        return (-priority, share, job.fifo, job.id)

    return sorted(snapshot.pending, key=key)


def _quota_detail(job: PendingJob, s: Snapshot) -> str | None:
    checks = []
    if (quota := s.user_quota.get(job.owner)) is not None:
        checks += [
            ("your daily", s.user_day.get(job.owner, 0.0), quota.daily),
            ("your weekly", s.user_week.get(job.owner, 0.0), quota.weekly),
        ]
    if job.team is not None and (quota := s.team_quota.get(job.team)) is not None:
        checks += [
            ("the team's daily", s.team_day.get(job.team, 0.0), quota.daily),
            ("the team's weekly", s.team_week.get(job.team, 0.0), quota.weekly),
        ]
    for name, used, limit in checks:
        if limit is not None and used >= limit:
            return f"{name} quota is used up ({used / 3600:.1f} of {limit / 3600:.1f} GPU-hours)"
    return None


def plan(snapshot: Snapshot, now: datetime) -> Plan:
    s, p = snapshot, snapshot.policies
    ordered = queue_order(s, now)
    now_ts = now.timestamp()
    free = {node.name: sorted(node.free) for node in s.nodes}
    running_total = sum(1 for r in s.running)
    per_user = Counter(r.owner for r in s.running)
    per_team = Counter(r.team for r in s.running if r.team is not None)
    held = {res: r.id for r in s.running for res in r.resources}
    busy_nodes = {r.node for r in s.running}
    profiles: dict[str, Profile] = {}
    if p.backfill:
        releases: dict[str, list[tuple[float, int]]] = {name: [] for name in free}
        for r in s.running:
            if r.node in releases:
                end = r.started_at.timestamp() + r.time_limit if r.time_limit else INF
                releases[r.node].append((end, r.gpu_count))
        profiles = {name: Profile(len(gpus), releases[name]) for name, gpus in free.items()}
    preemptible = sorted(
        (r for r in s.running if r.preemptible and not r.stopping),
        key=lambda r: (r.priority, -r.started_at.timestamp(), r.id),
    )
    starts: list[Start] = []
    waits: list[Wait] = []
    fails: list[Fail] = []
    preempts: list[Preempt] = []
    reservations: list[Reservation] = []
    head: PendingJob | None = None  # the first job that did not fit
    free_total = sum(len(g) for g in free.values())
    limits = p.limits

    for job in ordered:
        jid = job.id
        if p.expiry_seconds is not None and now_ts - job.submitted_at.timestamp() > p.expiry_seconds:
            fails.append(Fail(jid, Reason.EXPIRED, f"waited longer than {p.expiry_seconds / 3600:g} h"))
            continue
        if job.depends_on:
            dead = [d for d in job.depends_on if d in s.dead]
            if dead:
                fails.append(Fail(jid, Reason.DEPENDENCY, f"job {dead[0]} did not complete"))
                continue
            open_ = [d for d in job.depends_on if d not in s.completed]
            if open_:
                waits.append(Wait(jid, Reason.DEPENDENCY, "waits for job " + ", ".join(map(str, open_))))
                continue
        if p.queue_paused:
            waits.append(Wait(jid, Reason.QUEUE_PAUSED, "the queue is paused by an operator"))
            continue
        if job.off_peak_only:
            if p.off_peak is None:
                waits.append(
                    Wait(jid, Reason.OFF_PEAK, "off-peak only, and no off-peak window is configured")
                )
                continue
            if not p.off_peak.contains(now):
                opens = p.off_peak.next_start(now)
                waits.append(
                    Wait(jid, Reason.OFF_PEAK, f"off-peak only; the window opens {opens.isoformat()}")
                )
                continue
        if s.user_quota or s.team_quota:
            detail = _quota_detail(job, s)
            if detail:
                waits.append(Wait(jid, Reason.QUOTA, detail))
                continue
        if limits.max_concurrent is not None and running_total >= limits.max_concurrent:
            waits.append(
                Wait(jid, Reason.GLOBAL_LIMIT, f"{running_total} of {limits.max_concurrent} jobs running")
            )
            continue
        if limits.user_max_concurrent is not None and per_user[job.owner] >= limits.user_max_concurrent:
            waits.append(
                Wait(
                    jid,
                    Reason.USER_LIMIT,
                    f"its owner runs {per_user[job.owner]} of {limits.user_max_concurrent}",
                )
            )
            continue
        if (
            job.team is not None
            and limits.team_max_concurrent is not None
            and per_team[job.team] >= limits.team_max_concurrent
        ):
            waits.append(
                Wait(
                    jid,
                    Reason.TEAM_LIMIT,
                    f"its team runs {per_team[job.team]} of {limits.team_max_concurrent}",
                )
            )
            continue
        if job.resources:
            taken = [(res, held[res]) for res in job.resources if res in held]
            if taken:
                res, holder = taken[0]
                waits.append(Wait(jid, Reason.CONFLICT, f"{res} is held by job {holder}"))
                continue
        if p.serial == "global" and running_total:
            waits.append(Wait(jid, Reason.SERIAL, "serial mode: one job at a time"))
            continue
        if head is not None and not p.backfill:
            waits.append(Wait(jid, Reason.PRIORITY, f"behind job {head.id}"))
            continue

        need = job.gpu_count
        if free_total >= need:
            duration = job.time_limit or INF
            fits = [
                NodeFree(name, tuple(gpus))
                for name, gpus in free.items()
                if len(gpus) >= need
                and not (p.serial == "node" and name in busy_nodes)
                and (not p.backfill or profiles[name].feasible(now_ts, now_ts + duration, need))
            ]
            placement = place(need, fits)
            if placement is not None:
                starts.append(Start(jid, placement.node, placement.gpus))
                free[placement.node] = [g for g in free[placement.node] if g not in placement.gpus]
                free_total -= need
                running_total += 1
                per_user[job.owner] += 1
                if job.team is not None:
                    per_team[job.team] += 1
                for res in job.resources:
                    held[res] = jid
                busy_nodes.add(placement.node)
                if p.backfill:
                    profiles[placement.node].book(now_ts, now_ts + duration, need)
                continue

        # It does not fit now.
        if p.preemption is not None and job.priority >= p.preemption.min_priority and preemptible:
            victims = _choose_victims(job, preemptible, free, p.preemption)
            if victims:
                preempts.extend(Preempt(v.id, jid) for v in victims)
                gone = {v.id for v in victims}
                preemptible = [r for r in preemptible if r.id not in gone]
                waits.append(
                    Wait(jid, Reason.PREEMPTING, "stopping job " + ", ".join(str(v.id) for v in victims))
                )
                head = head or job
                continue
        if head is None:
            head = job
        detail = (
            f"needs {need} GPU(s) on one node; most free on a node: {max(map(len, free.values()), default=0)}"
        )
        if p.backfill and len(reservations) < p.backfill_depth:
            reservation = _reserve(job, profiles, busy_nodes if p.serial == "node" else set(), now_ts)
            if reservation is not None:
                reservations.append(reservation)
                detail += f"; reserved on {reservation.node} from {reservation.start.isoformat()}"
        waits.append(Wait(jid, Reason.RESOURCES, detail))

    return Plan(
        order=tuple(job.id for job in ordered),
        starts=tuple(starts),
        waits=tuple(waits),
        fails=tuple(fails),
        preempts=tuple(preempts),
        reservations=tuple(reservations),
    )


def _choose_victims(job, preemptible, free, rule: Preemption) -> list[RunningJob]:
    """The fewest lowest-priority preemptible jobs on one node whose GPUs, with the free ones, fit."""
    best: list[RunningJob] | None = None
    by_node: dict[str, list[RunningJob]] = {}
    for r in preemptible:
        if r.priority <= rule.max_victim_priority and r.priority < job.priority:
            by_node.setdefault(r.node, []).append(r)
    for node in sorted(by_node):
        have = len(free.get(node, ()))
        chosen = []
        for victim in by_node[node]:
            if have >= job.gpu_count:
                break
            chosen.append(victim)
            have += victim.gpu_count
        if have >= job.gpu_count and (best is None or len(chosen) < len(best)):
            best = chosen
    return best or []


def _reserve(job, profiles: dict[str, Profile], excluded: set[str], now_ts: float) -> Reservation | None:
    duration = job.time_limit or INF
    best: tuple[float, str] | None = None
    for name in sorted(profiles):
        if name in excluded:
            continue
        t = profiles[name].earliest(job.gpu_count, duration, now_ts)
        if t is not None and (best is None or t < best[0]):
            best = (t, name)
    if best is None:
        return None
    t, name = best
    profiles[name].book(t, t + duration, job.gpu_count)
    return Reservation(job.id, name, datetime.fromtimestamp(t, tz=ZoneInfo("UTC")), job.gpu_count)
