"""The pure planner: which waiting jobs start now, where, and why each other job waits.

Standard library only. `plan(snapshot, now)` reads frozen dataclasses and returns a Plan; it never
queries, logs or publishes, and it is deterministic. The same function runs live (the tick), forward in
simulated time (estimated start times, scheduling.estimates) and in tests and benchmarks.

One walk over the waiting jobs in queue order (`_Walk.consider`, one named step per policy) applies every
policy. A job held by a policy of its own (dependency, quota, limit, window, conflict) does not hold back
the jobs behind it. A job that does not fit keeps the free GPUs it could use from the jobs behind it
(strict order), unless backfill is on, in which case it gets a reservation and a lower job may start only
if, run to its time limit, it cannot delay any reservation. Given the previous plan's reservations
(`Snapshot.previous_reservations`), it keeps them (`_Walk.keep_reservations`). The guarantees (no
starvation past the ageing threshold, reservations that backfill cannot delay, reservations that hold
across plans) are property tests in tests/scheduling/test_planner.py and test_reservations.py.
"""

import math
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from gpus.placement import PLAIN, Needs, NodeFree, could_ever_fit, eligible, place
from scheduling.gangplan import earliest_together, place_gang
from scheduling.profile import INF, Profile
from scheduling.reasons import Reason

__all__ = ["INF", "Profile", "Reason"]  # re-exported: tests and estimates use them from here


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
GLOBAL_CAP = ("global", 0)  # the profile key of `max_concurrent`'s slots (see `_Walk.caps`)

# --- policies -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Limits:
    max_concurrent: int | None = None
    user_max_concurrent: int | None = None
    team_max_concurrent: int | None = None


@dataclass(frozen=True)
class Ageing:
    """The starvation guarantee, and a gentle boost before it.

    A job that has been able to wait for longer than `threshold_seconds` is *starving*: it goes ahead of
    every job that is not, whatever their priorities, and starving jobs go longest-waiting first. So no
    job submitted later ever passes it again, and (with backfill) it is reserved before anything else.
    Before that, its priority grows by `boost_per_hour` for each hour waited, up to `max_boost`."""

    threshold_seconds: float = 86400.0
    boost_per_hour: float = 1.0
    max_boost: float = 20.0

    def boost(self, waited_seconds: float) -> float:
        return min(self.max_boost, self.boost_per_hour * max(0.0, waited_seconds) / 3600.0)


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
    max_victim_priority: int = 0  # …preemptible running jobs at or below this…
    min_runtime_seconds: float = 0.0  # …that have run at least this long (KAI's minimum runtime)


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
    # Quotas admit a job when its time limit × GPUs fits in what remains ("time_limit"), or when any
    # remains ("any_remaining"); a job without a time limit is admitted while any remains.
    quota_admit: str = "time_limit"
    # Order within a priority: "fifo" (submit time or the operators' order), "shortest_limit" (shortest
    # time limit first, none last) or "fewest_gpus"; the latter two compare whole priorities (ageing's
    # fractional boost is dropped), so they decide among jobs of one tier. See ORDERINGS.
    within_priority: str = "fifo"


@dataclass(frozen=True)
class Quota:
    daily: float | None = None  # GPU-seconds
    weekly: float | None = None


ORDERINGS = ("fifo", "shortest_limit", "fewest_gpus")

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
    # When it became able to wait (released at its start time, approved, resumed), if after submission:
    # expiry and ageing count from here.
    waiting_since: datetime | None = None
    nodes: int = 1  # a gang job: gpu_count / nodes GPUs on each of `nodes` distinct nodes, started together
    submitted_ts: float = field(init=False, repr=False, compare=False)
    since_ts: float = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        object.__setattr__(self, "submitted_ts", self.submitted_at.timestamp())
        since = self.waiting_since.timestamp() if self.waiting_since is not None else self.submitted_ts
        object.__setattr__(self, "since_ts", max(self.submitted_ts, since))

    @property
    def per_node(self) -> int:
        return self.gpu_count // self.nodes

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
    gpus: tuple[int, ...] = ()  # the GPU indices it holds, when known (preemption checks placement)
    parts: tuple[tuple[str, int], ...] = ()  # a gang job: (node, GPU count) of every part, rank 0 first


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
    # The previous plan's reservations (Plan.reservations): with backfill they are kept (see
    # `_Walk.keep_reservations`); the tick passes the stored plan's, a replay passes its last plan's.
    previous_reservations: "tuple[Reservation, ...]" = ()


class Start(NamedTuple):
    job_id: int
    node: str  # a gang job: rank 0's node and GPUs, and every part in `parts`
    gpus: tuple[int, ...]
    parts: tuple[tuple[str, tuple[int, ...]], ...] = ()


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
    start: datetime | None  # None: once running jobs without a time limit have ended (unknown)
    gpu_count: int
    nodes: tuple[str, ...] = ()  # a gang job: every node reserved (`node` is the first)


@dataclass(frozen=True)
class Plan:
    order: tuple[int, ...]  # waiting job ids in queue order (position 1 first)
    starts: tuple[Start, ...] = ()
    waits: tuple[Wait, ...] = ()
    fails: tuple[Fail, ...] = ()
    preempts: tuple[Preempt, ...] = ()
    reservations: tuple[Reservation, ...] = ()


# --- the walk -------------------------------------------------------------------------------------


def queue_order(snapshot: Snapshot, now: datetime) -> list[PendingJob]:
    """Waiting jobs in the order the planner considers them. Starving jobs first (see `Ageing`), longest
    waiting first; then the others by effective priority (with the ageing boost), then fair-share usage
    (lighter users first) when on, then FIFO (or the operators' order), then id."""
    policies = snapshot.policies
    ageing = policies.ageing
    now_ts = now.timestamp()
    user_share, team_share = snapshot.user_share, snapshot.team_share
    fair = policies.fair_share
    threshold, rate, max_boost = INF, 0.0, 0.0
    if ageing is not None:
        threshold, rate, max_boost = (
            ageing.threshold_seconds,
            ageing.boost_per_hour / 3600.0,
            ageing.max_boost,
        )

    def key(job: PendingJob):
        waited = now_ts - job.since_ts
        if waited > threshold:
            return (0, job.since_ts, 0.0, 0.0, job.id)
        priority = job.priority
        if rate and waited > 0:
            priority += min(max_boost, rate * waited)
        share = 0.0
        if fair:
            share = user_share.get(job.owner, 0.0) + (team_share.get(job.team, 0.0) if job.team else 0.0)
        fifo = job.order if job.order is not None else job.submitted_ts
        if within == "shortest_limit":
            return (1, -math.floor(priority), share, job.time_limit or INF, fifo, job.id)
        if within == "fewest_gpus":
            return (1, -math.floor(priority), share, job.gpu_count, fifo, job.id)
        return (1, -priority, share, fifo, job.id)

    within = policies.within_priority
    return sorted(snapshot.pending, key=key)


def doomed_by_dependencies(snapshot: Snapshot) -> dict[int, int]:
    """Waiting jobs that can never run because a dependency failed, directly or down a chain of waiting
    jobs, each with the dependency that failed it: a chain fails in one plan, not one link per plan."""
    deps = {job.id: job.depends_on for job in snapshot.pending if job.depends_on}
    doomed: dict[int, int] = {}
    changed = True
    while changed:
        changed = False
        for jid in sorted(deps):
            if jid in doomed:
                continue
            for dep in deps[jid]:
                if dep in snapshot.dead or dep in doomed:
                    doomed[jid], changed = dep, True
                    break
    return doomed


def plan(snapshot: Snapshot, now: datetime) -> Plan:
    ordered = queue_order(snapshot, now)
    walk = _Walk(snapshot, now)
    walk.keep_reservations(ordered)
    for job in ordered:
        walk.consider(job)
    return Plan(
        order=tuple(job.id for job in ordered),
        starts=tuple(walk.starts),
        waits=tuple(walk.waits),
        fails=tuple(walk.fails),
        preempts=tuple(walk.preempts),
        reservations=tuple(walk.reservations),
    )


class _Walk:
    """One walk over the waiting jobs in queue order; each step of `consider` is one policy."""

    def __init__(self, s: Snapshot, now: datetime):
        p = self.policies = s.policies
        self.s, self.now, self.now_ts = s, now, now.timestamp()
        self.starts: list[Start] = []
        self.waits: list[Wait] = []
        self.fails: list[Fail] = []
        self.preempts: list[Preempt] = []
        self.reservations: list[Reservation] = []
        self.doomed = doomed_by_dependencies(s)
        # Expiry counts from when a job became able to wait: those able to wait before this expire.
        self.expire_before = -INF if p.expiry_seconds is None else self.now_ts - p.expiry_seconds
        self.free = {node.name: sorted(node.free) for node in s.nodes}
        self.free_total = sum(len(g) for g in self.free.values())
        self.meta = {node.name: node for node in s.nodes}
        self.node_names = sorted(self.free)
        self.running_total = len(s.running)
        self.per_user = Counter(r.owner for r in s.running)
        self.per_team = Counter(r.team for r in s.running if r.team is not None)
        self.held_resources = {res: r.id for r in s.running for res in r.resources}
        self.busy_nodes = {node for r in s.running for node, _ in r.parts or ((r.node, 0),)}
        # Free GPUs of each node over time and, with caps, free slots of the global cap and of each
        # user's and team's (keys GLOBAL_CAP, ("user", id) and ("team", id), see `caps`).
        self.profiles: dict[str | tuple[str, int], Profile] = {}
        if p.backfill:
            releases: dict[str, list[tuple[float, int]]] = {name: [] for name in self.free}
            for r in s.running:
                end = r.started_at.timestamp() + r.time_limit if r.time_limit else INF
                for node, count in r.parts or ((r.node, r.gpu_count),):
                    if node in releases:
                        releases[node].append((end, count))
            self.profiles = {name: Profile(len(g), releases[name]) for name, g in self.free.items()}
        self.preemptible = sorted(
            (r for r in s.running if r.preemptible and not r.stopping and not r.parts),  # gangs: not yet
            key=lambda r: (r.priority, -r.started_at.timestamp(), r.id),
        )
        self.stopping = [r for r in s.running if r.stopping]
        # Strict order: the first job that does not fit, and the free GPUs held by every job that does
        # not fit (those it could use); a job behind may start only on GPUs nobody ahead could use.
        self.head: PendingJob | None = None
        self.behind = ""
        self.held_gpus: dict[str, set[int]] = {name: set() for name in self.free}
        self.unheld_total = self.free_total
        if p.off_peak is None:
            self.off_peak_wait: str | None = "off-peak only, and no off-peak window is configured"
        elif p.off_peak.contains(now):
            self.off_peak_wait = None
        else:
            self.off_peak_wait = f"off-peak only; the window opens {p.off_peak.next_start(now).isoformat()}"
        self.quotas_on = bool(s.user_quota or s.team_quota)
        self.quota_cache: dict[tuple, object] = {}  # rooms (quota_room) and details, until a charge
        self.quota_left_cache: dict[tuple, float] = {}
        self.user_used = {"day": dict(s.user_day), "week": dict(s.user_week)}
        self.team_used = {"day": dict(s.team_day), "week": dict(s.team_week)}
        # Caches, each valid until something is booked or started.
        self.resources_detail: dict[tuple, str] = {}  # per GPU count and needs
        self.no_victims: set[tuple] = set()  # (priority, GPUs, needs) that found no victims
        self.unplaceable: set[tuple] = set()  # (GPUs, time limit, needs) with no placement now
        self.unreservable: set[tuple] = set()  # … and with no reservation either
        self.reservation_tries = 0

    # --- the steps, in order ---------------------------------------------------------------------

    def consider(self, job: PendingJob) -> None:
        if job.id in self.kept:  # its kept slot is its own again: it may start, or reserve no later
            self.drop_kept(job.id)
        if self.fails_now(job):
            return
        held = self.held_by_policy(job)
        if held is not None:
            reason, detail = held
            if reason in (R_GLOBAL_LIMIT, R_USER_LIMIT, R_TEAM_LIMIT) and self.policies.backfill:
                detail += self.reserve(job, self.now_ts)  # from when the cap frees (see `caps`)
            self.waits.append(Wait(job.id, reason, detail))
            return
        if self.head is not None and not self.policies.backfill:
            if self.start_on_unheld(job):
                return
            self.hold_for(job)
            self.waits.append(Wait(job.id, R_PRIORITY, self.behind))
            return
        if self.start(job):
            return
        if self.preempt_for(job):
            return
        self.block(job)

    def fails_now(self, job: PendingJob) -> bool:
        """Expiry (counted from when the job became able to wait) and failed dependencies."""
        if job.since_ts < self.expire_before:
            expiry = self.policies.expiry_seconds or 0
            self.fails.append(Fail(job.id, R_EXPIRED, f"waited longer than {expiry / 3600:g} h"))
            return True
        if job.id in self.doomed:
            self.fails.append(Fail(job.id, R_DEPENDENCY, f"job {self.doomed[job.id]} did not complete"))
            return True
        return False

    def held_by_policy(self, job: PendingJob) -> tuple[str, str] | None:
        """A policy of the job's own that holds it (it does not hold back the jobs behind it)."""
        s, p = self.s, self.policies
        if job.depends_on:
            open_ = [d for d in job.depends_on if d not in s.completed]
            if open_:
                return R_DEPENDENCY, "waits for job " + ", ".join(map(str, open_))
        if p.queue_paused:
            return R_QUEUE_PAUSED, "the queue is paused by an operator"
        if job.off_peak_only and self.off_peak_wait is not None:
            return R_OFF_PEAK, self.off_peak_wait
        if self.quotas_on:
            room = self.quota_left(job)
            cost = self.quota_cost(job)
            if room <= 0 or cost > room:
                key = (job.owner, job.team, cost)
                if key not in self.quota_cache:
                    self.quota_cache[key] = self.quota_block(job)
                return R_QUOTA, self.quota_cache[key] or ""
        limits = p.limits
        if limits.max_concurrent is not None and self.running_total >= limits.max_concurrent:
            return R_GLOBAL_LIMIT, f"{self.running_total} of {limits.max_concurrent} jobs running"
        if limits.user_max_concurrent is not None and self.per_user[job.owner] >= limits.user_max_concurrent:
            return R_USER_LIMIT, f"its owner runs {self.per_user[job.owner]} of {limits.user_max_concurrent}"
        if (
            job.team is not None
            and limits.team_max_concurrent is not None
            and self.per_team[job.team] >= limits.team_max_concurrent
        ):
            return R_TEAM_LIMIT, f"its team runs {self.per_team[job.team]} of {limits.team_max_concurrent}"
        if self.cap_slots:
            taken = self.cap_reserved(job)
            if taken is not None:
                return taken
        if job.resources:
            taken = [(res, self.held_resources[res]) for res in job.resources if res in self.held_resources]
            if taken:
                return R_CONFLICT, f"{taken[0][0]} is held by job {taken[0][1]}"
        if p.serial == "global" and self.running_total:
            return R_SERIAL, "serial mode: one job at a time"
        return None

    def quota_block(self, job: PendingJob) -> str | None:
        """Why the owner's or team's quota does not admit this job, or None. Under "time_limit" the job's
        whole time limit must fit in what remains, so a burst of starts cannot overshoot."""
        cost = self.quota_cost(job)
        rooms = [self.quota_room("your", self.s.user_quota, self.user_used, job.owner)]
        if job.team is not None:
            rooms.append(self.quota_room("the team's", self.s.team_quota, self.team_used, job.team))
        for room in rooms:
            if room is None:
                continue
            name, spent, limit = room
            if spent >= limit:
                return f"{name} quota is used up ({spent / 3600:.1f} of {limit / 3600:.1f} GPU-hours)"
            if spent + cost > limit:
                return (
                    f"{name} quota has {(limit - spent) / 3600:.1f} GPU-hours left; this job may use "
                    f"{cost / 3600:.1f} ({job.gpu_count} GPU(s) × its time limit)"
                )
        return None

    def quota_left(self, job: PendingJob) -> float:
        """GPU-seconds left to the job in the tightest quota of its owner and team (INF: no quota)."""
        key = (job.owner, job.team)
        left = self.quota_left_cache.get(key)
        if left is None:
            left = INF
            rooms = [self.quota_room("your", self.s.user_quota, self.user_used, job.owner)]
            if job.team is not None:
                rooms.append(self.quota_room("the team's", self.s.team_quota, self.team_used, job.team))
            for room in rooms:
                if room is not None:
                    left = min(left, room[2] - room[1])
            self.quota_left_cache[key] = left
        return left

    def quota_room(self, whose: str, quotas, used, key) -> tuple[str, float, float] | None:
        """The tightest quota window of a user or team: (its name, GPU-seconds spent, limit), cached
        until a start charges it."""
        cache_key = (whose, key)
        if cache_key not in self.quota_cache:
            quota, tightest = quotas.get(key), None
            if quota is not None:
                for window, limit, label in (("day", quota.daily, "daily"), ("week", quota.weekly, "weekly")):
                    if limit is None:
                        continue
                    spent = used[window].get(key, 0.0)
                    if tightest is None or limit - spent < tightest[2] - tightest[1]:
                        tightest = (f"{whose} {label}", spent, limit)
            self.quota_cache[cache_key] = tightest
        return self.quota_cache[cache_key]

    def quota_cost(self, job: PendingJob) -> float:
        if self.policies.quota_admit != "time_limit" or not job.time_limit:
            return 0.0
        return job.gpu_count * job.time_limit

    def start(self, job: PendingJob) -> bool:
        """Place the job now if it fits (with backfill: only where, run to its time limit, it cannot
        delay a reservation)."""
        if job.nodes > 1:
            return self.start_gang(job)
        need, needs, serial, backfill = job.gpu_count, job.needs, self.policies.serial, self.policies.backfill
        profiles = self.view(job)
        shape = (need, job.time_limit, needs, profiles is self.base)
        if self.free_total < need or shape in self.unplaceable:
            return False
        duration = job.time_limit or INF
        now_ts = self.now_ts
        fits = [
            replace(self.meta[name], free=tuple(gpus))
            for name, gpus in self.free.items()
            if len(gpus) >= need
            and not (serial == "node" and name in self.busy_nodes)
            and (not backfill or profiles[name].feasible(now_ts, now_ts + duration, need))
        ]
        placement = place(need, fits, needs)
        if placement is None and profiles is not self.base:
            placement = self.start_by_moving(job)
        if placement is None:
            self.unplaceable.add(shape)  # the same for every job of this shape until something is booked
            return False
        self.record_start(job, placement.node, placement.gpus)
        return True

    def start_on_unheld(self, job: PendingJob) -> bool:
        """Strict order, behind a job that does not fit: start only on GPUs no job ahead could use."""
        if self.unheld_total < job.gpu_count:
            return False
        if job.nodes > 1:
            return self.start_gang_on_unheld(job)
        serial = self.policies.serial
        fits = [
            replace(self.meta[name], free=tuple(g for g in gpus if g not in self.held_gpus[name]))
            for name, gpus in self.free.items()
            if not (serial == "node" and name in self.busy_nodes)
        ]
        placement = place(job.gpu_count, fits, job.needs)
        if placement is None:
            return False
        self.record_start(job, placement.node, placement.gpus)
        return True

    def record_start(self, job: PendingJob, node: str, gpus: tuple[int, ...]) -> None:
        self.starts.append(Start(job.id, node, gpus))
        self.free[node] = [g for g in self.free[node] if g not in gpus]
        self.free_total -= len(gpus)
        self.unheld_total -= len(gpus)
        self.resources_detail.clear()
        self.no_victims.clear()
        self.unplaceable.clear()
        self.unreservable.clear()
        self.running_total += 1
        self.per_user[job.owner] += 1
        end = self.now_ts + job.time_limit if job.time_limit else INF
        if job.team is not None:
            self.per_team[job.team] += 1
        for res in job.resources:
            self.held_resources[res] = job.id
        self.busy_nodes.add(node)
        cost = self.quota_cost(job)
        if cost:
            self.quota_cache.clear()
            self.quota_left_cache.clear()
            for window in ("day", "week"):
                used = self.user_used[window]
                used[job.owner] = used.get(job.owner, 0.0) + cost
                if job.team is not None:
                    used = self.team_used[window]
                    used[job.team] = used.get(job.team, 0.0) + cost
        if self.policies.backfill:
            self.book(node, self.now_ts, end, len(gpus))
            for key in self.caps(job):
                self.book(key, self.now_ts, end, 1)

    def preempt_for(self, job: PendingJob) -> bool:
        """Stop preemptible lower-priority jobs on one node where the job could then run, unless GPUs
        are already on their way back there (a job stopping): one round of victims per grace period."""
        rule = self.policies.preemption
        if rule is None or job.priority < rule.min_priority or not self.preemptible or job.nodes > 1:
            return False
        need, needs = job.gpu_count, job.needs
        stopping = [r for r in self.stopping if self.could_host(r.node, job)]
        if stopping:
            ids = ", ".join(str(r.id) for r in stopping)
            self.waits.append(Wait(job.id, R_PREEMPTING, f"waits for job {ids} to stop"))
            self.set_head(job)
            return True
        key = (job.priority, need, needs)
        if key in self.no_victims:
            return False
        victims = self.choose_victims(job, rule)
        if not victims:
            self.no_victims.add(key)
            return False
        self.no_victims.clear()
        self.preempts.extend(Preempt(v.id, job.id) for v in victims)
        gone = {v.id for v in victims}
        self.preemptible = [r for r in self.preemptible if r.id not in gone]
        self.stopping.extend(victims)
        ids = ", ".join(str(v.id) for v in victims)
        self.waits.append(Wait(job.id, R_PREEMPTING, "stopping job " + ids))
        self.set_head(job)
        return True

    def could_host(self, node: str, job: PendingJob) -> bool:
        return node in self.meta and (
            job.needs.plain or could_ever_fit(job.per_node, [self.meta[node]], job.needs)
        )

    def choose_victims(self, job: PendingJob, rule: Preemption) -> list[RunningJob]:
        """The fewest lowest-priority victims on one node after whose stop the job can be placed there
        (its needs included), each having run at least the minimum runtime."""
        best: list[RunningJob] | None = None
        by_node: dict[str, list[RunningJob]] = {}
        for r in self.preemptible:
            if (
                r.priority <= rule.max_victim_priority
                and r.priority < job.priority
                and self.now_ts - r.started_at.timestamp() >= rule.min_runtime_seconds
            ):
                by_node.setdefault(r.node, []).append(r)
        for node in sorted(by_node):
            if not self.could_host(node, job):
                continue
            free, chosen = list(self.free.get(node, ())), []
            for victim in by_node[node]:
                if self.fits_after(job, node, free, chosen):
                    break
                if victim.gpus and not eligible(self.meta[node], victim.gpus, job.needs):
                    continue  # its GPUs are of no use to the job
                chosen.append(victim)
            if (
                chosen
                and self.fits_after(job, node, free, chosen)
                and (best is None or len(chosen) < len(best))
            ):
                best = chosen
        return best or []

    def fits_after(self, job: PendingJob, node: str, free: list[int], victims: list[RunningJob]) -> bool:
        if any(not v.gpus for v in victims):  # indices unknown: count only (the node could host it)
            return len(free) + sum(v.gpu_count for v in victims) >= job.gpu_count
        freed = tuple(sorted({*free, *(g for v in victims for g in v.gpus)}))
        return place(job.gpu_count, [replace(self.meta[node], free=freed)], job.needs) is not None

    def block(self, job: PendingJob) -> None:
        """The job does not fit: it waits for resources, holds (strict order) or reserves (backfill)."""
        self.set_head(job)
        need, needs = job.gpu_count, job.needs
        if (need, needs) not in self.resources_detail:
            most = max((len(eligible(self.meta[n], g, needs)) for n, g in self.free.items()), default=0)
            wants = f" ({needs.describe()})" if not needs.plain else ""
            self.resources_detail[(need, needs)] = (
                f"needs {need} GPU(s){wants} on one node; most free on a node: {most}"
            )
        detail = self.gang_detail(job) if job.nodes > 1 else self.resources_detail[(need, needs)]
        if self.policies.backfill:
            detail += self.reserve(job, self.now_ts)
        self.waits.append(Wait(job.id, R_RESOURCES, detail))

    def set_head(self, job: PendingJob) -> None:
        if self.head is None:
            self.head, self.behind = job, f"behind job {job.id}"
        if not self.policies.backfill:
            self.hold_for(job)

    def hold_for(self, job: PendingJob) -> None:
        """Strict order: the free GPUs this job could use are kept for it from jobs behind."""
        if not self.unheld_total:
            return
        for name, gpus in self.free.items():
            if not self.could_host(name, job):
                continue
            held = self.held_gpus[name]
            for g in eligible(self.meta[name], [g for g in gpus if g not in held], job.needs):
                held.add(g)
                self.unheld_total -= 1

    def reserve(self, job: PendingJob, after: float) -> str:
        """Book the earliest slot from `after` (Slurm's bf_max_job_test caps how many jobs try); a shape
        that found no future slot finds none again until something else is booked. Returns the text
        that the wait's detail gains."""
        profiles, caps = self.view(job), self.caps(job)
        shape = (job.gpu_count, job.time_limit, job.needs, after, profiles is self.base, caps)
        beyond_depth = self.reservation_tries >= self.policies.backfill_depth
        if (beyond_depth and job.id not in self.had_reservation) or shape in self.unreservable:
            return ""
        self.reservation_tries += 1
        if job.nodes > 1:
            return self.reserve_gang(job, after, shape)
        duration = job.time_limit or INF
        excluded = self.busy_nodes if self.policies.serial == "node" else set()
        best: tuple[float, str] | None = None
        for name in self.node_names:
            if name in excluded or not self.could_host(name, job):
                continue
            wanted = ((profiles[name], job.gpu_count), *((profiles[key], 1) for key in caps))
            t = _earliest(wanted, duration, after)
            if t is not None and (best is None or t < best[0]):
                best = (t, name)
        if profiles is not self.base and self.kept:
            best = self.reserve_by_moving(job, after, best) or best
        if best is None:
            self.unreservable.add(shape)
            return ""
        t, name = best
        self.book(name, t, t + duration, job.gpu_count)
        for key in caps:
            self.book(key, t, t + duration, 1)
        start = None if t == INF else datetime.fromtimestamp(t, tz=ZoneInfo("UTC"))
        self.reservations.append(Reservation(job.id, name, start, job.gpu_count))
        self.unplaceable.clear()
        self.unreservable.clear()
        if start is None:
            return f"; reserved on {name} once running jobs without a time limit end"
        return f"; reserved on {name} from {start.isoformat()}"

    # --- gang jobs (one part on each of several nodes, all started together) ----------------------

    def gang_nodes(self, job: PendingJob) -> list[str]:
        """The nodes that may take a part of this gang job (serial "node" mode: idle ones only)."""
        excluded = self.busy_nodes if self.policies.serial == "node" else set()
        return [n for n in self.node_names if n not in excluded and self.could_host(n, job)]

    def start_gang(self, job: PendingJob) -> bool:
        """All parts now, each on a different node, or none (with backfill: only where, run to its time
        limit, no part can delay a reservation)."""
        profiles = self.view(job)
        shape = (job.gpu_count, job.nodes, job.time_limit, job.needs, profiles is self.base)
        if self.free_total < job.gpu_count or shape in self.unplaceable:
            return False
        end = self.now_ts + (job.time_limit or INF)  # backfill: each part must not delay a reservation
        allowed = set(self.gang_nodes(job))
        if self.policies.backfill:
            allowed = {n for n in allowed if profiles[n].feasible(self.now_ts, end, job.per_node)}
        parts = place_gang(job.nodes, job.per_node, self.free, self.meta, job.needs, allowed.__contains__)
        if parts is None:
            self.unplaceable.add(shape)
            return False
        self.record_gang_start(job, parts)
        return True

    def start_gang_on_unheld(self, job: PendingJob) -> bool:
        """Strict order, behind a job that does not fit: every part on GPUs no job ahead could use."""
        unheld = {
            name: [g for g in gpus if g not in self.held_gpus[name]] for name, gpus in self.free.items()
        }
        allowed = set(self.gang_nodes(job))
        parts = place_gang(job.nodes, job.per_node, unheld, self.meta, job.needs, allowed.__contains__)
        if parts is None:
            return False
        self.record_gang_start(job, parts)
        return True

    def record_gang_start(self, job: PendingJob, parts) -> None:
        end = self.now_ts + (job.time_limit or INF)
        (node, gpus), others = parts[0], parts[1:]
        self.record_start(job, node, gpus)  # the job's own accounting (limits, quotas) once, on rank 0
        self.starts[-1] = self.starts[-1]._replace(parts=parts)
        for node, gpus in others:
            self.free[node] = [g for g in self.free[node] if g not in gpus]
            self.free_total -= len(gpus)
            self.unheld_total -= len(gpus)
            self.busy_nodes.add(node)
            if self.policies.backfill:
                self.book(node, self.now_ts, end, len(gpus))

    def reserve_gang(self, job: PendingJob, after: float, shape: tuple) -> str:
        """`reserve` for a gang job: the earliest time all its parts fit together, booked on each node."""
        duration, profiles, caps = job.time_limit or INF, self.view(job), self.caps(job)
        also = [(profiles[key], 1) for key in caps]
        found = earliest_together(
            job.nodes, job.per_node, duration, after, profiles, self.gang_nodes(job), also
        )
        if found is None:
            self.unreservable.add(shape)
            return ""
        t, names = found
        for name in names:
            self.book(name, t, t + duration, job.per_node)
        for key in caps:
            self.book(key, t, t + duration, 1)
        start = None if t == INF else datetime.fromtimestamp(t, tz=ZoneInfo("UTC"))
        self.reservations.append(Reservation(job.id, names[0], start, job.gpu_count, names))
        self.unplaceable.clear()
        self.unreservable.clear()
        where = ", ".join(names)
        if start is None:
            return f"; reserved on {where} once running jobs without a time limit end"
        return f"; reserved on {where} from {start.isoformat()}"

    def gang_detail(self, job: PendingJob) -> str:
        """Why a gang job does not fit now, cached like `block`'s detail until something starts."""
        key = ("gang", job.per_node, job.nodes, job.needs)
        if key not in self.resources_detail:
            self.resources_detail[key] = self.describe_gang_wait(job)
        return self.resources_detail[key]

    def describe_gang_wait(self, job: PendingJob) -> str:
        able = sum(
            1
            for n in self.gang_nodes(job)
            if len(eligible(self.meta[n], self.free[n], job.needs)) >= job.per_node
        )
        wants = f" ({job.needs.describe()})" if not job.needs.plain else ""
        return (
            f"needs {job.per_node} GPU(s){wants} on each of {job.nodes} nodes at once; "
            f"nodes with that many free: {able}"
        )

    # --- reservations kept across plans, and caps as slots (issue 13) ----------------------------------

    def keep_reservations(self, ordered: list[PendingJob]) -> None:
        """With backfill, book again the previous plan's reservation of each job still waiting, in queue
        order, where it still fits. A job then only ever moves earlier: when its turn comes it drops its
        kept slot and starts or reserves again, and it sees every kept slot of the jobs behind it, so it
        moves earlier only into time nobody was promised (Mu'alem and Feitelson's compression); a job
        that finished early cannot push anyone later. Only a job that *takes precedence* ignores the kept
        slots of the jobs behind it (`view`): one that had no reservation in the previous plan (a new
        arrival that ranks ahead, a job released from a hold) or a starving one (see `Ageing`). Where it
        books over kept slots, those of the jobs lowest in the queue are dropped first (`displace`); their
        jobs reserve afresh when their turn comes, still behind every other kept slot."""
        p = self.policies
        # job -> (start, end, what it holds: (node, GPUs) and (cap key, 1) for each of its caps)
        self.kept: dict[int, tuple[float, float, tuple[tuple[str | tuple[str, int], int], ...]]] = {}
        self.base = self.profiles  # the profiles without the kept slots of jobs not yet considered
        self.had_reservation: frozenset[int] = frozenset()
        self.rank: dict[int, int] = {}  # queue position of each job with a kept slot
        self.kept_jobs: dict[int, PendingJob] = {}
        self.starving_after = p.ageing.threshold_seconds if p.ageing is not None else INF
        limits = p.limits
        self.cap_slots = p.backfill and (
            limits.max_concurrent is not None
            or limits.user_max_concurrent is not None
            or limits.team_max_concurrent is not None
        )
        self.cap_ends: dict[tuple[str, int], list[float]] = {}  # running jobs' ends per cap
        self.cap_keys: dict[tuple[int, int | None], tuple[tuple[str, int], ...]] = {}  # per owner, team
        if self.cap_slots:
            for r in self.s.running:
                end = r.started_at.timestamp() + r.time_limit if r.time_limit else INF
                self.cap_ends.setdefault(GLOBAL_CAP, []).append(end)
                self.cap_ends.setdefault(("user", r.owner), []).append(end)
                if r.team is not None:
                    self.cap_ends.setdefault(("team", r.team), []).append(end)
        previous = {r.job_id: r for r in self.s.previous_reservations}
        if not p.backfill or not previous:
            return
        self.had_reservation = frozenset(previous)
        self.base = {name: profile.copy() for name, profile in self.profiles.items()}
        for rank, job in enumerate(ordered):
            r = previous.get(job.id)
            if r is None:
                continue
            # A gang job holds its part's GPUs on each of its nodes, all from the same time.
            places = r.nodes if job.nodes > 1 else (r.node,)
            if len(places) != job.nodes or not all(
                name in self.profiles and self.could_host(name, job) for name in places
            ):
                continue
            duration = job.time_limit or INF
            promised = INF if r.start is None else max(self.now_ts, r.start.timestamp())
            holds = (
                *((name, job.per_node) for name in places),
                *((key, 1) for key in self.caps(job)),
            )
            wanted = tuple((self.profiles[key], amount) for key, amount in holds)
            t: float | None = promised
            if not all(profile.feasible(promised, promised + duration, n) for profile, n in wanted):
                # The slack absorbs the microseconds lost when a start was stored as a datetime.
                t = _earliest(wanted, duration, promised - _SLACK)
                if t is None or t > promised + _SLACK:
                    continue  # no longer fits: the node lost GPUs, or a running job overran its limit
            for profile, amount in wanted:
                profile.book(t, t + duration, amount)
            self.kept[job.id] = (t, t + duration, holds)
            self.rank[job.id] = rank
            self.kept_jobs[job.id] = job

    def caps(self, job: PendingJob) -> tuple[tuple[str, int], ...]:
        """With backfill, the global cap and a user's or team's cap are resources like GPUs: a profile of
        free slots (the cap, less running jobs until their time limits, less starts and reservations). A
        job takes one global slot and one of its owner's and of its team's for its whole run, so a reservation is made only where the
        cap will let the job start, and no start takes a slot promised to a reserved job."""
        if not self.cap_slots:
            return ()
        whose = (job.owner, job.team)
        known = self.cap_keys.get(whose)
        if known is not None:
            return known
        limits, keys = self.policies.limits, []
        if limits.max_concurrent is not None:
            keys.append((GLOBAL_CAP, limits.max_concurrent))
        if limits.user_max_concurrent is not None:
            keys.append((("user", job.owner), limits.user_max_concurrent))
        if limits.team_max_concurrent is not None and job.team is not None:
            keys.append((("team", job.team), limits.team_max_concurrent))
        for key, cap in keys:
            if key not in self.profiles:
                ends = self.cap_ends.get(key, [])
                self.profiles[key] = Profile(cap - len(ends), [(end, 1) for end in ends])
                if self.base is not self.profiles:
                    self.base[key] = self.profiles[key].copy()
        known = self.cap_keys[whose] = tuple(key for key, _ in keys)
        return known

    def cap_reserved(self, job: PendingJob) -> tuple[str, str] | None:
        """Below its cap now, but the free slot is promised to another of the owner's (team's) jobs
        before this job, run to its time limit, would end."""
        profiles, end = self.view(job), self.now_ts + (job.time_limit or INF)
        for key in self.caps(job):
            if not profiles[key].feasible(self.now_ts, end, 1):
                if key == GLOBAL_CAP:
                    count, cap = self.running_total, self.policies.limits.max_concurrent
                    return (
                        R_GLOBAL_LIMIT,
                        f"{count} of {cap} jobs running; the rest is reserved for waiting jobs",
                    )
                if key[0] == "user":
                    count, cap = self.per_user[job.owner], self.policies.limits.user_max_concurrent
                    return (
                        R_USER_LIMIT,
                        f"its owner runs {count} of {cap}; the rest is reserved for their jobs",
                    )
                count, cap = self.per_team[job.team], self.policies.limits.team_max_concurrent
                return R_TEAM_LIMIT, f"its team runs {count} of {cap}; the rest is reserved for their jobs"
        return None

    def view(self, job: PendingJob) -> dict[str | tuple[str, int], Profile]:
        """The profiles a job must respect: all bookings, or, for a job that takes precedence over kept
        reservations (see keep_reservations), all but the kept slots of the jobs behind it."""
        if self.kept and (
            job.id not in self.had_reservation or self.now_ts - job.since_ts > self.starving_after
        ):
            return self.base
        return self.profiles

    def book(self, key: str | tuple[str, int], start: float, end: float, amount: int) -> None:
        """Book a start or a reservation on a node's (or a cap's) profile; a job that takes precedence
        may displace kept slots."""
        self.profiles[key].book(start, end, amount)
        if self.base is not self.profiles:
            self.base[key].book(start, end, amount)
            if self.kept and not self.profiles[key].feasible(start, end, 0):
                self.displace(key, start, end)

    def displace(self, key: str | tuple[str, int], start: float, end: float) -> None:
        """Drop kept slots holding `key` (a node or a cap) over [start, end), lowest in the queue first,
        until it is no longer overbooked."""
        profile = self.profiles[key]
        while not profile.feasible(start, end, 0):
            overlapping = [
                job_id
                for job_id, (s, e, holds) in self.kept.items()
                if any(k == key for k, _ in holds) and (s < end or end == INF) and (start < e or e == INF)
            ]
            if not overlapping:
                return
            self.drop_kept(max(overlapping, key=self.rank.__getitem__))

    # --- moving kept slots of jobs behind to other nodes, so that a job ahead can go earlier ---------

    def start_by_moving(self, job: PendingJob):
        """A placement now on a node where only kept slots of jobs behind stop the job, made free by
        moving each of those slots to another node (or time) no later than promised; or None."""
        if not self.kept or self.policies.serial == "node":
            return None
        duration, now_ts = job.time_limit or INF, self.now_ts
        for name in self.node_names:
            gpus = self.free[name]
            if len(gpus) < job.gpu_count or not self.base[name].feasible(
                now_ts, now_ts + duration, job.gpu_count
            ):
                continue
            placement = place(job.gpu_count, [replace(self.meta[name], free=tuple(gpus))], job.needs)
            if placement is not None and self.move_kept_from(name, now_ts, now_ts + duration, job.gpu_count):
                return placement
        return None

    def reserve_by_moving(self, job: PendingJob, after: float, best: tuple[float, str] | None):
        """An earlier slot than `best` on a node where only kept slots of jobs behind stop the job, made
        free as `start_by_moving` does; or None."""
        if self.policies.serial == "node":
            return None
        duration, caps = job.time_limit or INF, self.caps(job)
        # Only a node holding kept slots of jobs behind can offer more than `best` did.
        holding = {key for _, _, holds in self.kept.values() for key, _ in holds}
        earlier = []
        for name in self.node_names:
            if name not in holding or not self.could_host(name, job):
                continue
            wanted = ((self.base[name], job.gpu_count), *((self.profiles[key], 1) for key in caps))
            t = _earliest(wanted, duration, after, INF if best is None else best[0] - _SLACK)
            if t is not None and t < INF:
                earlier.append((t, name))
        for t, name in sorted(earlier):
            if self.move_kept_from(name, t, t + duration, job.gpu_count):
                return t, name
        return None

    def move_kept_from(self, node: str, start: float, end: float, gpus: int) -> bool:
        """Make `gpus` of `node` free over [start, end) by moving kept slots there (lowest in the queue
        first) elsewhere, each to the earliest place and time no later than its promise. All or
        nothing: if one cannot move, every slot is put back and False returned. The guarantee holds:
        no kept slot moves later."""
        profile, moved = self.profiles[node], []
        while not profile.feasible(start, end, gpus):
            overlapping = [
                job_id
                for job_id, (s, e, holds) in self.kept.items()
                if any(k == node for k, _ in holds) and s < end and (start < e or e == INF)
            ]
            movable = [j for j in overlapping if self.kept_jobs[j].nodes == 1 and self.kept[j][0] < INF]
            if len(movable) < len(overlapping) or not movable:
                return self.put_back(moved, [])
            job_id = max(movable, key=self.rank.__getitem__)
            moved.append((job_id, self.kept[job_id]))
            self.unbook_kept(job_id)
        profile.book(start, end, gpus)  # held while the moved slots find their new places
        placed = []
        for job_id, (promised, _, holds) in sorted(moved, key=lambda m: self.rank[m[0]]):
            job = self.kept_jobs[job_id]
            caps = tuple(key for key, _ in holds[1:])
            duration = job.time_limit or INF
            found: tuple[float, str] | None = None
            for name in self.node_names:
                if not self.could_host(name, job):
                    continue
                wanted = ((self.profiles[name], job.gpu_count), *((self.profiles[k], 1) for k in caps))
                t = _earliest(wanted, duration, self.now_ts)
                if t is not None and t <= promised + _SLACK and (found is None or t < found[0]):
                    found = (t, name)
            if found is None:
                profile.book(start, end, -gpus)
                return self.put_back(moved, placed)
            t, name = found
            new_holds = ((name, job.gpu_count), *((k, 1) for k in caps))
            self.kept[job_id] = (t, t + duration, new_holds)
            for key, amount in new_holds:
                self.profiles[key].book(t, t + duration, amount)
            placed.append(job_id)
        profile.book(start, end, -gpus)
        self.unplaceable.clear()
        self.unreservable.clear()
        return True

    def put_back(self, moved, placed) -> bool:
        for job_id in placed:
            self.unbook_kept(job_id)
        for job_id, slot in moved:
            self.kept[job_id] = slot
            s, e, holds = slot
            for key, amount in holds:
                self.profiles[key].book(s, e, amount)
        return False

    def unbook_kept(self, job_id: int) -> None:
        start, end, holds = self.kept.pop(job_id)
        for key, amount in holds:
            self.profiles[key].book(start, end, -amount)

    def drop_kept(self, job_id: int) -> None:
        start, end, holds = self.kept.pop(job_id)
        for key, amount in holds:
            self.profiles[key].book(start, end, -amount)  # unbook
        self.unplaceable.clear()
        self.unreservable.clear()


def _earliest(wanted, duration: float, after: float, before: float = INF) -> float | None:
    """The first time from `after` at which each (profile, amount) has `amount` free for `duration`
    (None if never, or not before `before`)."""
    t = after
    while True:
        moved = False
        for profile, amount in wanted:
            u = profile.earliest(amount, duration, t, before)
            if u is None:
                return None
            if u != t:
                t, moved = u, True
        if not moved:
            return t


_SLACK = 0.001  # seconds
