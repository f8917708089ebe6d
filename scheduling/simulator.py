"""The what-if simulator: replay a trace of jobs through the real planner in simulated time, and measure.

Pure and standard library only, like the planner: `replay(jobs, policies, nodes)` drives `plan()` with an
event-driven clock (a plan at each arrival or end, nothing in between, no sleeping); a started job runs
its trace run time, or its time limit if shorter (the executor ends it there). `measure()` turns the
outcome into the figures operators compare: GPU utilisation, mean/p95/max wait by GPU-count class and by
user, Jain's fairness index over users, and starts out of order.

What a replay does not model: quotas, approvals, preemption, dependencies, off-peak-only jobs and
placement needs (a trace has none of them); a job needing more GPUs than the largest node is counted as
`unplaceable` and left out of the figures.
"""

import heapq
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from gpus.placement import NodeFree
from scheduling.planner import PendingJob, Policies, RunningJob, Snapshot, plan

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)  # simulated time 0 when a trace gives offsets only
CLASSES = (("1", 1, 1), ("2-4", 2, 4), ("5-8", 5, 8), (">8", 9, math.inf))  # GPU-count classes
SLOWDOWN_FLOOR = 10.0  # seconds: bounded slowdown's floor on run time (Feitelson), so tiny jobs count sanely


@dataclass(frozen=True)
class TraceJob:
    id: int
    submit: float  # seconds since the trace's start
    gpus: int
    runtime: float  # seconds it really ran
    user: str
    team: str | None = None
    priority: int = 10
    time_limit: float | None = None


@dataclass(frozen=True)
class Setup:
    """A policy set as the simulator runs it: the planner's policies and fair share's half-life."""

    policies: Policies = Policies()
    half_life_seconds: float = 86400.0


@dataclass
class Outcome:
    start: dict[int, float] = field(default_factory=dict)  # job id -> simulated start (s)
    end: dict[int, float] = field(default_factory=dict)
    expired: set[int] = field(default_factory=set)
    unplaceable: set[int] = field(default_factory=set)
    out_of_order: int = 0  # starts that passed a waiting job of at least their priority submitted earlier
    plans: int = 0


def _ids(names: Iterable[str | None]) -> dict[str, int]:
    return {name: i for i, name in enumerate(sorted({n for n in names if n is not None}), start=1)}


def replay(
    jobs: Sequence[TraceJob],
    setup: Setup,
    nodes: Sequence[tuple[str, int]],
    *,
    epoch: datetime = EPOCH,
    progress: Callable[[float], None] | None = None,
) -> Outcome:
    """Run `jobs` on `nodes` ((name, GPUs) pairs) under `setup`; deterministic."""
    out = Outcome()
    biggest = max((n for _, n in nodes), default=0)
    users, teams = _ids(j.user for j in jobs), _ids(j.team for j in jobs)
    runnable = []
    for j in jobs:
        (out.unplaceable.add(j.id) if j.gpus > biggest or j.gpus < 1 else runnable.append(j))
    arrivals = sorted(runnable, key=lambda j: (j.submit, j.id))
    by_id = {j.id: j for j in runnable}
    policies, fair = setup.policies, setup.policies.fair_share
    decay_rate = math.log(2) / setup.half_life_seconds
    share: dict[int, float] = {}
    team_share: dict[int, float] = {}
    free = {name: list(range(n)) for name, n in nodes}
    waiting: dict[int, PendingJob] = {}
    running: dict[int, tuple[RunningJob, tuple[int, ...]]] = {}
    ends: list[tuple[float, int]] = []  # heap of (end, job id)
    kept: tuple = ()  # the last plan's reservations
    k, t, last_t, total = 0, 0.0, 0.0, len(arrivals)
    step = max(1, total // 50)
    while k < total or ends:
        t = min(arrivals[k].submit if k < total else math.inf, ends[0][0] if ends else math.inf)
        if fair and t > last_t:  # decayed GPU-seconds per user and team, as the live fair share keeps them
            decay = math.exp(-decay_rate * (t - last_t))
            for usage in (share, team_share):
                for key in usage:
                    usage[key] *= decay
            for r, _ in running.values():
                used = r.gpu_count * (t - last_t)  # every running job started at or before last_t
                share[r.owner] = share.get(r.owner, 0.0) + used
                if r.team is not None:
                    team_share[r.team] = team_share.get(r.team, 0.0) + used
        last_t = t
        while ends and ends[0][0] <= t:
            _, jid = heapq.heappop(ends)
            r, gpus = running.pop(jid)
            free[r.node].extend(gpus)
        while k < total and arrivals[k].submit <= t:
            j = arrivals[k]
            waiting[j.id] = PendingJob(
                j.id,
                j.gpus,
                j.priority,
                epoch + timedelta(seconds=j.submit),
                owner=users[j.user],
                team=teams.get(j.team) if j.team is not None else None,
                time_limit=j.time_limit,
            )
            k += 1
            if progress is not None and k % step == 0:
                progress(k / total)
        if not waiting or (not any(free.values()) and policies.expiry_seconds is None):
            continue  # nothing could start: no plan needed
        now = epoch + timedelta(seconds=t)
        snap = Snapshot(
            pending=tuple(waiting.values()),
            running=tuple(r for r, _ in running.values()),
            policies=policies,
            nodes=tuple(NodeFree(name, tuple(sorted(g))) for name, g in free.items()),
            user_share=share,
            team_share=team_share,
            previous_reservations=kept,  # each plan keeps the last one's reservations, as ticks do
        )
        result = plan(snap, now)
        kept = result.reservations
        out.plans += 1
        for fail in result.fails:
            waiting.pop(fail.job_id, None)
            out.expired.add(fail.job_id)
        started = [waiting.pop(s.job_id) for s in result.starts]
        out.out_of_order += _passed(started, waiting.values())
        for s, job in zip(result.starts, started, strict=True):
            free[s.node] = [g for g in free[s.node] if g not in s.gpus]
            trace = by_id[s.job_id]
            ran = min(trace.runtime, trace.time_limit) if trace.time_limit else trace.runtime
            out.start[s.job_id], out.end[s.job_id] = t, t + ran
            heapq.heappush(ends, (t + ran, s.job_id))
            running[s.job_id] = (
                RunningJob(
                    s.job_id,
                    s.node,
                    job.gpu_count,
                    now,
                    owner=job.owner,
                    team=job.team,
                    priority=job.priority,
                    time_limit=job.time_limit,
                ),
                s.gpus,
            )
    if progress is not None:
        progress(1.0)
    return out


def _passed(started: list[PendingJob], still: Iterable[PendingJob]) -> int:
    """How many of `started` passed a job still waiting with at least their priority, submitted before
    them (FIFO within a priority is the order users expect; backfill and other orders break it)."""
    if not started:
        return 0
    earliest: dict[int, tuple[float, int]] = {}  # priority -> earliest (submit, id) still waiting
    for job in still:
        key = (job.submitted_ts, job.id)
        if job.priority not in earliest or key < earliest[job.priority]:
            earliest[job.priority] = key
    count = 0
    for job in started:
        mine = (job.submitted_ts, job.id)
        if any(p >= job.priority and first < mine for p, first in earliest.items()):
            count += 1
    return count


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank percentile (q in 0..100) of values, 0.0 for none."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def _stats(waits: Sequence[float]) -> dict:
    return {
        "jobs": len(waits),
        "mean": sum(waits) / len(waits) if waits else 0.0,
        "p95": percentile(waits, 95),
        "max": max(waits, default=0.0),
    }


def jain(values: Sequence[float]) -> float:
    """Jain's fairness index (Σx)² / (n·Σx²): 1.0 when all are equal, 1/n when one takes everything."""
    squares = sum(x * x for x in values)
    return (sum(values) ** 2) / (len(values) * squares) if squares else 1.0


def measure(jobs: Sequence[TraceJob], out: Outcome, nodes: Sequence[tuple[str, int]]) -> dict:
    """The figures of one replay. Waits in seconds; utilisation over the span from the first submission
    to the last end; Jain's index over users' mean bounded slowdown ((wait + run) / max(run, 10 s))."""
    done = [j for j in jobs if j.id in out.start]
    waits = {j.id: out.start[j.id] - j.submit for j in done}
    capacity = sum(n for _, n in nodes)
    first = min((j.submit for j in done), default=0.0)
    span = max(out.end.values(), default=0.0) - first
    busy = sum((out.end[j.id] - out.start[j.id]) * j.gpus for j in done)
    by_class = {
        name: _stats([waits[j.id] for j in done if low <= j.gpus <= high]) for name, low, high in CLASSES
    }
    by_user: dict[str, list[float]] = {}
    slowdowns: dict[str, list[float]] = {}
    for j in done:
        ran = out.end[j.id] - out.start[j.id]
        by_user.setdefault(j.user, []).append(waits[j.id])
        slowdowns.setdefault(j.user, []).append(max(1.0, (waits[j.id] + ran) / max(ran, SLOWDOWN_FLOOR)))
    return {
        "jobs": len(done),
        "utilization": busy / (capacity * span) if capacity and span > 0 else 0.0,
        "makespan_hours": span / 3600,
        "wait": _stats(list(waits.values())),
        "wait_by_gpus": by_class,
        "wait_by_user": {user: _stats(w) for user, w in sorted(by_user.items())},
        "jain": jain([sum(s) / len(s) for s in slowdowns.values()]),
        "out_of_order": out.out_of_order,
        "expired": len(out.expired),
        "unplaceable": len(out.unplaceable),
    }


def compare(
    jobs: Sequence[TraceJob],
    setups: dict[str, Setup],
    nodes: Sequence[tuple[str, int]],
    *,
    epoch: datetime = EPOCH,
    progress: Callable[[float], None] | None = None,
) -> dict[str, dict]:
    """Replay the same jobs under each named setup; the figures per name, in the order given."""
    results = {}
    for i, (name, setup) in enumerate(setups.items()):
        part = None
        if progress is not None:
            part = lambda f, i=i: progress((i + f) / len(setups))  # noqa: E731
        results[name] = measure(jobs, replay(jobs, setup, nodes, epoch=epoch, progress=part), nodes)
    return results
