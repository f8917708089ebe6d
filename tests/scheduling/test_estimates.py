"""Estimated start ranges: the planner run forward over what is known of each job's length. A table of
cases without the database (what is known is passed in), then what is known read from it."""

from datetime import UTC, datetime, timedelta

from django.utils import timezone

from gpus.placement import NodeFree
from scheduling import events, selectors
from scheduling.estimates import Estimate, Known, estimate_starts, running_end
from scheduling.models import Event, Job
from scheduling.planner import PendingJob, RunningJob, Snapshot
from scheduling.states import Status
from scheduling.tick import tick
from tests.factories import make_job

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
GRACE = 10.0


def waiting(id, gpus=1, **kw):
    return PendingJob(
        id=id, gpu_count=gpus, priority=10, submitted_at=NOW - timedelta(seconds=100 - id), **kw
    )


def busy(id, seconds_ago, gpus=1, node="n", **kw):
    return RunningJob(id=id, node=node, gpu_count=gpus, started_at=NOW - timedelta(seconds=seconds_ago), **kw)


def estimates(*pending, run=(), free=(), known=None, at=NOW):
    snap = Snapshot(tuple(pending), (NodeFree("n", tuple(free)),), tuple(run))
    return estimate_starts(snap, at, depth=100, known=known or {}, grace=GRACE)


def test_a_job_behind_two_running_jobs_with_30_s_limits_does_not_slide_with_the_clock():
    run = [busy(50, 20, time_limit=30), busy(51, 20, time_limit=30)]
    started = NOW - timedelta(seconds=20)
    bound = started + timedelta(seconds=30 + GRACE)
    seen = [
        estimates(waiting(1, gpus=2), run=run, at=NOW + timedelta(seconds=s))[1] for s in (0, 5, 12, 15, 19)
    ]
    assert seen[0] == Estimate(started + timedelta(seconds=30), bound)  # they end at their limits…
    assert all(e.latest == bound and e.start <= bound for e in seen)  # …and never later than the bound
    assert seen[-1] == Estimate(bound, bound)  # past their limits, within the grace: the bound, fixed


def test_without_history_or_a_time_limit_the_estimate_is_unknown():
    result = estimates(waiting(1), run=[busy(50, 60)])
    assert result == {1: Estimate(None, None)}  # not "in an hour"


def test_a_range_from_history_to_the_hard_bound():
    run = [busy(50, 600, time_limit=3600)]
    result = estimates(waiting(1), run=run, known={50: Known(median=900)})
    started = NOW - timedelta(seconds=600)
    assert result[1] == Estimate(started + timedelta(seconds=900), started + timedelta(seconds=3600 + GRACE))


def test_history_longer_than_the_time_limit_is_cut_at_the_bound():
    job = busy(50, 600, time_limit=3600)
    expected, bound = running_end(job, NOW.timestamp(), Known(median=50_000), GRACE)
    assert expected == bound == job.started_at.timestamp() + 3600 + GRACE


def test_a_jobs_own_progress_predicts_its_end():
    job = busy(50, 600, time_limit=3600)
    half_way = Known(median=3000, fraction=0.5, fraction_at=NOW - timedelta(seconds=100))  # 500 s for half
    expected, _ = running_end(job, NOW.timestamp(), half_way, GRACE)
    assert expected == job.started_at.timestamp() + 1000


def test_an_overdue_expectation_without_a_bound_becomes_unknown_not_a_minute_from_now():
    job = busy(50, 600)  # ran past its history's median, no time limit
    assert running_end(job, NOW.timestamp(), Known(median=300), GRACE) == (float("inf"), float("inf"))


def test_a_waiting_job_without_a_time_limit_makes_the_latest_start_of_those_behind_it_unknown():
    first = waiting(1, gpus=2)  # no time limit, but history says 600 s
    second = waiting(2, gpus=2, time_limit=60)
    result = estimates(first, second, free=(0, 1), known={1: Known(median=600)})
    assert result[1] == Estimate(NOW, NOW)
    assert result[2] == Estimate(NOW + timedelta(seconds=600), None)


# --- what is known, read from the database ----------------------------------------------------------


def test_the_queue_estimate_uses_a_running_jobs_reported_progress(alice, node, settings):
    busy = make_job(alice, gpu_count=2, argv=["train.py"], time_limit_seconds=7200)
    tick()
    started = timezone.now() - timedelta(seconds=600)
    Job.objects.filter(pk=busy.pk).update(started_at=started)
    events.emit_progress(busy.pk, {"fraction": 0.25, "message": "epoch 1"})
    at = started + timedelta(seconds=300)  # a quarter done after 300 s: it ends at start + 1200 s
    Event.objects.filter(kind=Event.Kind.PROGRESS, job_id=busy.pk).update(at=at)
    waiting_job = make_job(alice, argv=["eval.py"], time_limit_seconds=60)
    tick()  # stores the estimates the queue shows
    entry = next(e for e in selectors.queue().pending if e.job.pk == waiting_job.pk)
    assert entry.estimated_start == started + timedelta(seconds=1200)
    assert entry.estimated_start_latest == started + timedelta(
        seconds=7200 + settings.GPUQ_KILL_GRACE_SECONDS
    )


def test_the_queue_estimate_uses_the_history_of_similar_jobs(alice, node):
    now = timezone.now()
    for minutes in (10, 20, 30):  # the same program finished in a median of 20 minutes
        make_job(
            alice,
            argv=["train.py"],
            status=Status.COMPLETED,
            started_at=now - timedelta(hours=2),
            finished_at=now - timedelta(hours=2) + timedelta(minutes=minutes),
        )
    busy = make_job(alice, gpu_count=2, argv=["train.py"])  # no time limit: only history bounds it…
    tick()
    started = now - timedelta(minutes=5)
    Job.objects.filter(pk=busy.pk).update(started_at=started)
    waiting_job = make_job(alice, argv=["eval.py"])
    tick()
    entry = next(e for e in selectors.queue().pending if e.job.pk == waiting_job.pk)
    assert entry.estimated_start == started + timedelta(minutes=20)
    assert entry.estimated_start_latest is None and entry.estimated  # …so there is no latest start
