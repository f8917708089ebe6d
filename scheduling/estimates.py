"""Estimated start times: the planner run forward in simulated time, once over expected lengths and once
over hard bounds, giving each waiting job a range (expected start, latest start).

Not `position × average`: each simulated step is a real `plan()`, so limits, quotas, windows,
dependencies and conflicts shape the estimate as they will shape the real start. What is known of a
running job's end: its hard bound (start + time limit + the kill grace), its own progress (the fraction
it reported and when), the median length of similar completed jobs. An end nothing bounds is unknown, and
so is any start that waits for it: no guessed default. Estimates never slide with the clock: an
expected end that has passed becomes the job's hard bound (or unknown), never "a minute from now".
Only the first `depth` waiting jobs are simulated; later ones get no estimate ("later").
"""

import statistics
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from django.conf import settings
from django.db.models import Max

from scheduling import planner
from scheduling.models import Event, Job
from scheduling.planner import INF
from scheduling.states import Status

_HISTORY = 50  # recent completed jobs per kind


@dataclass(frozen=True)
class Known:
    """What is known of a job's length beyond its time limit."""

    median: float | None = None  # seconds: the median of recent similar completed jobs
    fraction: float | None = None  # its own progress, 0 < fraction ≤ 1 …
    fraction_at: datetime | None = None  # … as reported at this time


@dataclass(frozen=True)
class Estimate:
    start: datetime | None  # the expected start; None: unknown (it waits for an end nothing bounds)
    latest: datetime | None  # the latest start if every job runs to its hard bound; None: no bound


def running_end(job: planner.RunningJob, now_ts: float, known: Known, grace: float) -> tuple[float, float]:
    """(expected end, hard bound) of a running job as POSIX seconds; INF is unknown. The expected end is
    the job's own progress extrapolated, else its history's median, else its time limit, never past the
    bound; once it has passed, the bound (which does not move) or unknown."""
    start = job.started_at.timestamp()
    bound = start + job.time_limit + grace if job.time_limit else INF
    expected = INF
    if known.fraction and known.fraction_at is not None and 0 < known.fraction <= 1:
        expected = start + max(0.0, known.fraction_at.timestamp() - start) / known.fraction
    elif known.median is not None:
        expected = start + known.median
    elif job.time_limit:
        expected = start + job.time_limit
    expected = min(expected, bound)
    if expected < now_ts:
        expected = bound
    if bound < now_ts:  # past its bound and not yet stopped: it ends any moment
        expected = bound = now_ts
    return expected, bound


def pending_length(job: planner.PendingJob, known: Known, grace: float) -> tuple[float, float]:
    """(expected, longest) run time of a waiting job in seconds; INF is unknown."""
    bound = job.time_limit + grace if job.time_limit else INF
    if known.median is not None:
        return min(known.median, bound), bound
    return (job.time_limit if job.time_limit else INF), bound


def history_medians(job_ids) -> dict[int, float]:
    """The median run time of recent similar completed jobs (same template, else same program), for
    the jobs that have such history."""
    rows = list(Job.objects.filter(id__in=job_ids).values_list("id", "template_id", "argv"))
    kinds = {(r[1], None if r[1] else (r[2] or [""])[0]) for r in rows}
    medians: dict[tuple, float] = {}
    for template_id, program in kinds:
        done = Job.objects.filter(
            status=Status.COMPLETED, started_at__isnull=False, finished_at__isnull=False
        )
        done = done.filter(template_id=template_id) if template_id else done.filter(template__isnull=True)
        runtimes = [
            (f - s).total_seconds()
            for s, f, argv in done.order_by("-finished_at").values_list("started_at", "finished_at", "argv")[
                : _HISTORY * 4
            ]
            if template_id or (argv or [""])[0] == program
        ][:_HISTORY]
        if runtimes:
            medians[(template_id, program)] = statistics.median(runtimes)
    found = {r[0]: medians.get((r[1], None if r[1] else (r[2] or [""])[0])) for r in rows}
    return {job_id: m for job_id, m in found.items() if m is not None}


def reported_progress(job_ids) -> dict[int, tuple[float, datetime]]:
    """The last progress fraction each running job reported, and when (from the live event stream)."""
    last = (
        Event.objects.filter(kind=Event.Kind.PROGRESS, job_id__in=job_ids)
        .values("job_id")
        .annotate(m=Max("id"))
    )
    found = {}
    for job_id, at, data in Event.objects.filter(id__in=[row["m"] for row in last]).values_list(
        "job_id", "at", "data"
    ):
        fraction = (data.get("progress") or {}).get("fraction")
        if isinstance(fraction, int | float) and 0 < fraction <= 1:
            found[job_id] = (float(fraction), at)
    return found


def what_is_known(snap: planner.Snapshot, waiting) -> dict[int, Known]:
    running_ids = [r.id for r in snap.running]
    medians = history_medians([j.id for j in waiting] + running_ids)
    progress = reported_progress(running_ids)
    return {
        job_id: Known(medians.get(job_id), *progress.get(job_id, (None, None)))
        for job_id in {*medians, *progress}
    }


def estimate_starts(
    snap: planner.Snapshot,
    now: datetime,
    *,
    depth: int | None = None,
    known: dict[int, Known] | None = None,
    grace: float | None = None,
) -> dict[int, Estimate]:
    """The estimated start range of each of the first `depth` waiting jobs (later ones get none)."""
    depth = depth or settings.GPUQ_ESTIMATE_DEPTH
    grace = settings.GPUQ_KILL_GRACE_SECONDS if grace is None else grace
    waiting = planner.queue_order(snap, now)[:depth]
    if not waiting:
        return {}
    if known is None:
        known = what_is_known(snap, waiting)
    nothing, now_ts = Known(), now.timestamp()
    ends = {r.id: running_end(r, now_ts, known.get(r.id, nothing), grace) for r in snap.running}
    lengths = {j.id: pending_length(j, known.get(j.id, nothing), grace) for j in waiting}
    expected = _simulate(
        snap, now, waiting, {k: e[0] for k, e in ends.items()}, {k: v[0] for k, v in lengths.items()}
    )
    latest = _simulate(
        snap, now, waiting, {k: e[1] for k, e in ends.items()}, {k: v[1] for k, v in lengths.items()}
    )
    estimates = {}
    for job in waiting:
        start, last = expected.get(job.id, INF), latest.get(job.id, INF)
        start = min(start, last)  # never later than the bound (the greedy planner is not monotonic)
        estimates[job.id] = Estimate(_when(start), _when(last))
    return estimates


def _when(ts: float) -> datetime | None:
    return None if ts == INF else datetime.fromtimestamp(ts, tz=UTC)


def _simulate(
    snap: planner.Snapshot, now: datetime, waiting, running_ends: dict[int, float], lengths: dict[int, float]
) -> dict[int, float]:
    """Run plan() forward from `now`: each running job ends at its given end, each started job after its
    given length (INF: never). Returns when each waiting job starts; those that never do are absent."""
    t = now.timestamp()
    free = {n.name: list(n.free) for n in snap.nodes}
    synthetic = -1
    running: list[tuple[float, planner.RunningJob, tuple[int, ...]]] = [
        (running_ends[r.id], r, ()) for r in snap.running
    ]
    remaining = list(waiting)
    completed = set(snap.completed)
    starts: dict[int, float] = {}
    policies = replace(snap.policies, preemption=None)
    meta = {n.name: n for n in snap.nodes}
    kept = snap.previous_reservations  # each simulated plan keeps the last one's, as ticks do
    for _ in range(4 * len(waiting) + 4):
        still = []
        for end, r, gpus in running:
            if end <= t:
                completed.add(r.id)
                # A gang job gives its GPUs back on each of its nodes: `gpus` holds (node, GPUs) pairs.
                counts = dict(r.parts) if r.parts else {r.node: r.gpu_count}
                pieces = gpus if r.parts and gpus else tuple((n, gpus) for n in counts)
                for node, back in pieces:
                    if node in free:
                        if not back:  # running at `now`: its GPU indices may be unknown, count is enough
                            back = (r.gpus if not r.parts else ()) or tuple(
                                range(synthetic, synthetic - counts[node], -1)
                            )
                            synthetic -= counts[node]
                        free[node].extend(back)
            else:
                still.append((end, r, gpus))
        running = still
        when = datetime.fromtimestamp(t, tz=UTC)
        sim = replace(
            snap,
            pending=tuple(remaining),
            running=tuple(r for _, r, _ in running),
            policies=policies,
            nodes=tuple(replace(meta[name], free=tuple(g)) for name, g in free.items()),
            completed=frozenset(completed),
            previous_reservations=kept,
        )
        result = planner.plan(sim, when)
        kept = result.reservations
        started = {s.job_id: s for s in result.starts}
        gone = started.keys() | {f.job_id for f in result.fails}
        for job in remaining:
            if job.id in started:
                start = started[job.id]
                starts[job.id] = t
                for node, gpus in start.parts or ((start.node, start.gpus),):
                    free[node] = [g for g in free[node] if g not in gpus]
                simulated = planner.RunningJob(
                    id=job.id,
                    node=start.node,
                    gpu_count=job.gpu_count,
                    started_at=when,
                    owner=job.owner,
                    team=job.team,
                    priority=job.priority,
                    resources=job.resources,
                    time_limit=job.time_limit,
                    parts=tuple((node, len(gpus)) for node, gpus in start.parts),
                )
                running.append((t + lengths.get(job.id, INF), simulated, start.parts or start.gpus))
        remaining = [j for j in remaining if j.id not in gone]
        if not remaining:
            break
        upcoming = [end for end, _, _ in running if t < end < INF]
        if snap.policies.off_peak and any(w.reason == planner.Reason.OFF_PEAK for w in result.waits):
            upcoming.append(snap.policies.off_peak.next_start(when).timestamp())
        if not upcoming:
            break
        t = min(upcoming)
    return starts
