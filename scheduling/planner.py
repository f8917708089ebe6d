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
from bisect import bisect_left, bisect_right
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from gpus.placement import PLAIN, Needs, NodeFree, could_ever_fit, eligible, place

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


R_PRIORITY, R_RESOURCES, R_GLOBAL_LIMIT = Reason.PRIORITY, Reason.RESOURCES, Reason.GLOBAL_LIMIT
R_USER_LIMIT, R_TEAM_LIMIT, R_QUOTA, R_OFF_PEAK = (
    Reason.USER_LIMIT,
    Reason.TEAM_LIMIT,
    Reason.QUOTA,
    Reason.OFF_PEAK,
)
R_DEPENDENCY, R_CONFLICT, R_SERIAL, R_PREEMPTING = (
    Reason.DEPENDENCY,
    Reason.CONFLICT,
    Reason.SERIAL,
    Reason.PREEMPTING,
)
R_QUEUE_PAUSED, R_EXPIRED = Reason.QUEUE_PAUSED, Reason.EXPIRED

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
    needs: Needs = PLAIN  # memory, model, devices, labels, target
    submitted_ts: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "submitted_ts", self.submitted_at.timestamp())

    @property
    def fifo(self) -> float:
        return self.order if self.order is not None else self.submitted_ts


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


class Start(NamedTuple):
    job_id: int
    node: str
    gpus: tuple[int, ...]


class Wait(NamedTuple):
    job_id: int
    reason: str
    detail: str


class Fail(NamedTuple):
    job_id: int
    reason: str
    detail: str


class Preempt(NamedTuple):
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
    """Free GPUs of one node over time, as a step function: free now, plus running jobs' GPUs coming back
    at their time limits, minus what this plan has booked (starts and reservations). Times are POSIX
    seconds. Lookups bisect; a range minimum is one C-level min(); `floor` (the least the node will ever
    have free) answers most feasibility checks at once."""

    __slots__ = ("free_now", "events", "times", "levels", "floor")

    def __init__(self, free_now: int, releases: list[tuple[float, int]]):
        self.free_now = free_now
        self.events: dict[float, int] = {}
        for end, gpus in releases:
            if end < INF:
                self.events[end] = self.events.get(end, 0) + gpus
        self._rebuild()

    def _rebuild(self) -> None:
        self.times = sorted(self.events)
        level, levels = self.free_now, []
        for t in self.times:
            level += self.events[t]
            levels.append(level)
        self.levels = levels
        self.floor = min(levels, default=self.free_now) if levels else self.free_now
        self.floor = min(self.floor, self.free_now)

    def free_at(self, t: float) -> int:
        i = bisect_right(self.times, t) - 1
        return self.free_now if i < 0 else self.levels[i]

    def feasible(self, start: float, end: float, gpus: int) -> bool:
        if gpus <= self.floor:
            return True
        i = bisect_right(self.times, start) - 1
        j = bisect_left(self.times, end)
        lowest = self.free_now if i < 0 else self.levels[i]
        if j > i + 1:
            lowest = min(lowest, min(self.levels[i + 1 : j]))
        return lowest >= gpus

    def earliest(self, gpus: int, duration: float, now: float) -> float | None:
        if self.feasible(now, now + duration, gpus):
            return now
        for k in range(bisect_right(self.times, now), len(self.times)):
            if self.levels[k] >= gpus and self.feasible(self.times[k], self.times[k] + duration, gpus):
                return self.times[k]
        return None

    def book(self, start: float, end: float, gpus: int) -> None:
        self.events[start] = self.events.get(start, 0) - gpus
        if end < INF:
            self.events[end] = self.events.get(end, 0) + gpus
        self._rebuild()


def queue_order(
    snapshot: Snapshot, now: datetime, submitted_ts: dict[int, float] | None = None
) -> list[PendingJob]:
    """Waiting jobs in the order the planner considers them: effective priority (with the ageing boost),
    then fair-share usage (lighter users first) when on, then FIFO (or the operators' order), then id."""
    policies = snapshot.policies
    ageing = policies.ageing
    now_ts = now.timestamp()
    user_share, team_share = snapshot.user_share, snapshot.team_share

    fair = policies.fair_share
    if ageing is not None:
        threshold, rate, max_boost = (
            ageing.threshold_seconds,
            ageing.boost_per_hour / 3600.0,
            ageing.max_boost,
        )

    def key(job: PendingJob):
        submitted = job.submitted_ts
        priority = job.priority
        if ageing is not None:
            over = now_ts - submitted - threshold
            if over > 0:
                priority += min(max_boost, rate * over)
        share = 0.0
        if fair:
            share = user_share.get(job.owner, 0.0) + (team_share.get(job.team, 0.0) if job.team else 0.0)
        return (-priority, share, job.order if job.order is not None else submitted, job.id)

    return sorted(snapshot.pending, key=key)


def _quota_block(quota: Quota | None, day: float, week: float, whose: str) -> str | None:
    """Why a quota holds new starts, or None (no quota is unlimited)."""
    if quota is None:
        return None
    for name, used, limit in ((f"{whose} daily", day, quota.daily), (f"{whose} weekly", week, quota.weekly)):
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
    behind = ""
    free_total = sum(len(g) for g in free.values())
    limits = p.limits
    if p.off_peak is None:
        off_peak_wait: str | None = "off-peak only, and no off-peak window is configured"
    elif p.off_peak.contains(now):
        off_peak_wait = None
    else:
        off_peak_wait = f"off-peak only; the window opens {p.off_peak.next_start(now).isoformat()}"
    user_block: dict[int, str | None] = {}
    team_block: dict[int, str | None] = {}
    node_names = sorted(free)
    meta = {node.name: node for node in s.nodes}
    resources_detail: dict[tuple, str] = {}  # per GPU count and needs, until the free GPUs change
    no_victims: set[tuple[int, int]] = set()  # (priority, GPUs) that found no victims, until that changes
    unplaceable: set[tuple] = set()  # (GPUs, time limit, needs) with no placement now
    unreservable: set[tuple] = set()  # … and with no reservation either
    reservation_tries = 0

    expiry, queue_paused, serial, backfill = p.expiry_seconds, p.queue_paused, p.serial, p.backfill
    max_all, max_user, max_team = (
        limits.max_concurrent,
        limits.user_max_concurrent,
        limits.team_max_concurrent,
    )
    quotas_on = bool(s.user_quota or s.team_quota)
    add_wait = waits.append
    for job in ordered:
        jid = job.id
        if expiry is not None and now_ts - job.submitted_ts > expiry:
            fails.append(Fail(jid, R_EXPIRED, f"waited longer than {expiry / 3600:g} h"))
            continue
        if job.depends_on:
            dead = [d for d in job.depends_on if d in s.dead]
            if dead:
                fails.append(Fail(jid, R_DEPENDENCY, f"job {dead[0]} did not complete"))
                continue
            open_ = [d for d in job.depends_on if d not in s.completed]
            if open_:
                add_wait(Wait(jid, R_DEPENDENCY, "waits for job " + ", ".join(map(str, open_))))
                continue
        if queue_paused:
            add_wait(Wait(jid, R_QUEUE_PAUSED, "the queue is paused by an operator"))
            continue
        if job.off_peak_only and off_peak_wait is not None:
            add_wait(Wait(jid, R_OFF_PEAK, off_peak_wait))
            continue
        if quotas_on:
            owner, team = job.owner, job.team
            if owner not in user_block:
                user_block[owner] = _quota_block(
                    s.user_quota.get(owner), s.user_day.get(owner, 0.0), s.user_week.get(owner, 0.0), "your"
                )
            detail = user_block[owner]
            if detail is None and team is not None:
                if team not in team_block:
                    team_block[team] = _quota_block(
                        s.team_quota.get(team),
                        s.team_day.get(team, 0.0),
                        s.team_week.get(team, 0.0),
                        "the team's",
                    )
                detail = team_block[team]
            if detail:
                add_wait(Wait(jid, R_QUOTA, detail))
                continue
        if max_all is not None and running_total >= max_all:
            add_wait(Wait(jid, R_GLOBAL_LIMIT, f"{running_total} of {max_all} jobs running"))
            continue
        if max_user is not None and per_user[job.owner] >= max_user:
            add_wait(
                Wait(
                    jid,
                    R_USER_LIMIT,
                    f"its owner runs {per_user[job.owner]} of {max_user}",
                )
            )
            continue
        if job.team is not None and max_team is not None and per_team[job.team] >= max_team:
            add_wait(
                Wait(
                    jid,
                    R_TEAM_LIMIT,
                    f"its team runs {per_team[job.team]} of {max_team}",
                )
            )
            continue
        if job.resources:
            taken = [(res, held[res]) for res in job.resources if res in held]
            if taken:
                res, holder = taken[0]
                add_wait(Wait(jid, R_CONFLICT, f"{res} is held by job {holder}"))
                continue
        if serial == "global" and running_total:
            add_wait(Wait(jid, R_SERIAL, "serial mode: one job at a time"))
            continue
        if head is not None and not backfill:
            add_wait(Wait(jid, R_PRIORITY, behind))
            continue

        need = job.gpu_count
        needs = job.needs
        shape = (need, job.time_limit, needs)
        if free_total >= need and shape not in unplaceable:
            duration = job.time_limit or INF
            fits = [
                replace(meta[name], free=tuple(gpus))
                for name, gpus in free.items()
                if len(gpus) >= need
                and not (serial == "node" and name in busy_nodes)
                and (not backfill or profiles[name].feasible(now_ts, now_ts + duration, need))
            ]
            placement = place(need, fits, needs)
            if placement is None:
                unplaceable.add(shape)  # the same for every job of this shape until something is booked
            else:
                starts.append(Start(jid, placement.node, placement.gpus))
                free[placement.node] = [g for g in free[placement.node] if g not in placement.gpus]
                free_total -= need
                resources_detail.clear()
                no_victims.clear()
                unplaceable.clear()
                unreservable.clear()
                running_total += 1
                per_user[job.owner] += 1
                if job.team is not None:
                    per_team[job.team] += 1
                for res in job.resources:
                    held[res] = jid
                busy_nodes.add(placement.node)
                if backfill:
                    profiles[placement.node].book(now_ts, now_ts + duration, need)
                continue

        # It does not fit now.
        if p.preemption is not None and job.priority >= p.preemption.min_priority and preemptible:
            if (job.priority, need) in no_victims:
                victims = []
            else:
                victims = _choose_victims(job, preemptible, free, p.preemption)
                if not victims:
                    no_victims.add((job.priority, need))
            if victims:
                no_victims.clear()
                preempts.extend(Preempt(v.id, jid) for v in victims)
                gone = {v.id for v in victims}
                preemptible = [r for r in preemptible if r.id not in gone]
                add_wait(Wait(jid, R_PREEMPTING, "stopping job " + ", ".join(str(v.id) for v in victims)))
                if head is None:
                    head, behind = job, f"behind job {job.id}"
                continue
        if head is None:
            head, behind = job, f"behind job {job.id}"
        if (need, needs) not in resources_detail:
            most = max((len(eligible(meta[n], g, needs)) for n, g in free.items()), default=0)
            wants = f" ({needs.describe()})" if not needs.plain else ""
            resources_detail[(need, needs)] = (
                f"needs {need} GPU(s){wants} on one node; most free on a node: {most}"
            )
        detail = resources_detail[(need, needs)]
        # Reservations: the first `backfill_depth` blocked jobs are tried (Slurm's bf_max_job_test); a
        # shape that found no future slot finds none again until something else is booked.
        if backfill and reservation_tries < p.backfill_depth and shape not in unreservable:
            reservation_tries += 1
            hosts = [n for n in node_names if needs.plain or could_ever_fit(need, [meta[n]], needs)]
            reservation = _reserve(job, profiles, hosts, busy_nodes if serial == "node" else set(), now_ts)
            if reservation is None:
                unreservable.add(shape)
            else:
                reservations.append(reservation)
                unplaceable.clear()
                unreservable.clear()
                detail += f"; reserved on {reservation.node} from {reservation.start.isoformat()}"
        add_wait(Wait(jid, R_RESOURCES, detail))

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


def _reserve(
    job, profiles: dict[str, Profile], names: list[str], excluded: set[str], now_ts: float
) -> Reservation | None:
    duration = job.time_limit or INF
    best: tuple[float, str] | None = None
    for name in names:
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
