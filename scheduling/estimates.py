"""Estimated start times: the planner run forward in simulated time over expected durations.

Not `position × average`: each simulated step is a real `plan()`, so limits, quotas, windows,
dependencies and conflicts shape the estimate as they will shape the real start. Expected durations
come from the history of similar jobs (same template, else same program), else the time limit, else
GPUQ_DEFAULT_RUNTIME_SECONDS. Only the first `depth` waiting jobs are simulated; later ones get no
estimate ("later"), which keeps the cost bounded on long queues.
"""

import statistics
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from django.conf import settings

from gpus.placement import NodeFree
from scheduling import planner
from scheduling.models import Job
from scheduling.states import Status

_HISTORY = 50  # recent completed jobs per kind


def expected_durations(job_ids) -> dict[int, float]:
    """Expected run time in seconds of each job: the median of recent similar completed jobs, else its
    time limit, else the default."""
    rows = list(
        Job.objects.filter(id__in=job_ids).values_list("id", "template_id", "argv", "time_limit_seconds")
    )
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
    default = settings.GPUQ_DEFAULT_RUNTIME_SECONDS
    return {r[0]: medians.get((r[1], None if r[1] else (r[2] or [""])[0]), r[3] or default) for r in rows}


def estimate_starts(
    snap: planner.Snapshot,
    now: datetime,
    *,
    depth: int | None = None,
    durations: dict[int, float] | None = None,
) -> dict[int, datetime]:
    depth = depth or settings.GPUQ_ESTIMATE_DEPTH
    waiting = planner.queue_order(snap, now)[:depth]
    if not waiting:
        return {}
    if durations is None:
        durations = expected_durations([j.id for j in waiting] + [r.id for r in snap.running])
    default = settings.GPUQ_DEFAULT_RUNTIME_SECONDS
    t = now
    free = {n.name: list(n.free) for n in snap.nodes}
    synthetic = -1
    running: list[tuple[datetime, planner.RunningJob, tuple[int, ...]]] = []
    for r in snap.running:
        end = r.started_at + timedelta(seconds=durations.get(r.id, r.time_limit or default))
        running.append((max(end, now + timedelta(seconds=60)), r, ()))  # overdue: assume one more minute
    remaining = list(waiting)
    completed = set(snap.completed)
    estimates: dict[int, datetime] = {}
    policies = replace(snap.policies, preemption=None)
    for _ in range(4 * depth + 4):
        sim = replace(
            snap,
            pending=tuple(remaining),
            running=tuple(r for _, r, _ in running),
            policies=policies,
            nodes=tuple(NodeFree(name, tuple(g)) for name, g in free.items()),
            completed=frozenset(completed),
        )
        result = planner.plan(sim, t)
        started = {s.job_id: s for s in result.starts}
        gone = started.keys() | {f.job_id for f in result.fails}
        for job in remaining:
            if job.id in started:
                start = started[job.id]
                estimates[job.id] = t
                free[start.node] = [g for g in free[start.node] if g not in start.gpus]
                end = t + timedelta(seconds=durations.get(job.id, job.time_limit or default))
                running.append(
                    (
                        end,
                        planner.RunningJob(
                            id=job.id,
                            node=start.node,
                            gpu_count=job.gpu_count,
                            started_at=t,
                            owner=job.owner,
                            team=job.team,
                            priority=job.priority,
                            resources=job.resources,
                            time_limit=job.time_limit,
                        ),
                        start.gpus,
                    )
                )
        remaining = [j for j in remaining if j.id not in gone]
        if not remaining:
            break
        upcoming = [end for end, _, _ in running if end > t]
        if snap.policies.off_peak and any(w.reason == planner.Reason.OFF_PEAK for w in result.waits):
            upcoming.append(snap.policies.off_peak.next_start(t).astimezone(UTC))
        if not upcoming:
            break
        t = min(upcoming)
        still = []
        for end, r, gpus in running:
            if end <= t:
                completed.add(r.id)
                if r.node in free:
                    if not gpus:  # a job running at `now`: its GPU indices are unknown, count is enough
                        gpus = tuple(range(synthetic, synthetic - r.gpu_count, -1))
                        synthetic -= r.gpu_count
                    free[r.node].extend(gpus)
            else:
                still.append((end, r, gpus))
        running = still
    return estimates
