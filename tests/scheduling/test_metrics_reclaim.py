"""/metrics for the scheduler's timings, the live relays' lag and idle-GPU reclaim: scraped with the test client, parsed with
prometheus-client's parser, and matched against what the ticker and the relay stored and what the API says."""

from datetime import timedelta

import pytest
from channels.db import database_sync_to_async as db
from django.utils import timezone

from gpus.inventory import GpuInfo
from gpus.services import node_refresh_gpus
from scheduling import durations, housekeeping, reclaim, ticker
from scheduling.metrics import scrape as render
from scheduling.models import Event, IdleWatch, PolicyType, RelayReport, TickState
from scheduling.policies import set_policy
from scheduling.relay import REPORTS_KEPT, relay_name, report_lag
from scheduling.states import Status
from scheduling.stops import IDLE_ERROR
from scheduling.transitions import transition
from tests.conftest import api_for, wait_for
from tests.factories import make_job
from tests.scheduling.test_live import logged_in, opened, run, socket
from tests.scheduling.test_metrics import parse, scrape
from tests.scheduling.test_reclaim import running

MIN = timedelta(minutes=1)


def test_tick_and_plan_durations_are_what_the_ticker_recorded(alice, node):
    make_job(alice)
    for _ in range(3):
        ticker.run(force=True)
    recorded = TickState.objects.get(pk=1).durations
    metrics = scrape()
    for name in ("tick", "plan"):
        assert metrics.get_value(f"gpuq_{name}_duration_seconds_count") == recorded[name]["count"] == 3
        assert metrics.get_value(f"gpuq_{name}_duration_seconds_sum") == recorded[name]["sum"] > 0
        assert metrics.get_value(f"gpuq_{name}_duration_seconds_bucket", le="+Inf") == 3
        assert metrics.get_value(f"gpuq_{name}_last_duration_seconds") == recorded[name]["last"]
        assert len(metrics[f"gpuq_{name}_duration_seconds_bucket"]) == len(durations.BUCKETS) + 1
    assert recorded["plan"]["sum"] <= recorded["tick"]["sum"]  # the planner runs inside the tick


def test_durations_fall_into_their_buckets():
    once = durations.added({}, {"tick": 0.007})
    twice = durations.added(once, {"tick": 42.0, "plan": 0.001})
    assert twice["tick"]["buckets"][1] == 1 and twice["tick"]["buckets"][-1] == 1
    assert (twice["tick"]["count"], twice["tick"]["sum"], twice["tick"]["last"]) == (2, 42.007, 42.0)
    assert twice["plan"]["buckets"][0] == 1 and once == durations.added({}, {"tick": 0.007})


def test_idle_figures_match_the_watch_and_the_api(alice, bob, node, root):
    set_policy(PolicyType.IDLE_RECLAIM, enabled=True, config={"idle_minutes": 30, "grace_minutes": 15})
    idle, stopped = running(alice, gpu_count=1), running(bob, gpu_count=1)
    readings = [
        GpuInfo(i, f"SIM-testnode-{i}", "Simulated GPU", 24576, True, utilization_percent=1) for i in (0, 1)
    ]
    t0 = timezone.now()
    node_refresh_gpus(node=node, gpus=readings, our_pids=set())
    reclaim.idle_check(node=node, now=t0)
    reclaim.idle_check(node=node, now=t0 + 30 * MIN)  # both warned
    now = t0 + 40 * MIN
    metrics = parse(render(now).decode())
    assert metrics.by("gpuq_idle_jobs", "state") == {("idle",): 0, ("warned",): 2, ("acted",): 0}
    assert metrics.get_value("gpuq_idle_gpus", state="warned") == 2
    assert metrics.by("gpuq_job_idle_seconds", "job", "user") == {
        (str(idle.pk), "alice"): 2400,
        (str(stopped.pk), "bob"): 2400,
    }
    # bob's job is stopped for idle (its executor would record it so; here the transition stands in).
    stopped.refresh_from_db()
    transition(stopped, Status.CANCELLED, reason="idle", stop_request="idle", error=IDLE_ERROR)
    metrics = scrape()
    listed = api_for(root).get("/api/v1/jobs?status=cancelled").json()["results"]
    assert (
        metrics.get_value("gpuq_jobs_idle_stopped") == sum(j["stop_request"] == "idle" for j in listed) == 1
    )
    assert metrics.by("gpuq_idle_jobs", "state")[("warned",)] == 1  # only running jobs are idle


@pytest.mark.django_db(transaction=True)
def test_each_relays_lag_is_what_it_reported(alice, settings):
    """A relay (this process's, fed through a real websocket) hands on an event written 5 s ago: its
    report says so, and any process's scrape shows it."""
    settings.GPUQ_RELAY_REPORT_SECONDS = 0  # report on every batch
    client = logged_in(alice)

    async def scenario():
        live = socket(client)
        await opened(live)
        await db(Event.objects.create)(
            kind=Event.Kind.NODE, at=timezone.now() - timedelta(seconds=5), data={"name": "late"}
        )
        assert (await live.receive_json_from(timeout=10))["data"]["name"] == "late"
        await db(wait_for)(lambda: RelayReport.objects.filter(relay=relay_name()).exists(), 30)
        await live.disconnect()

    run(scenario)
    report = RelayReport.objects.get(relay=relay_name())
    # The relay is this process's: earlier tests' events may share its report period (so >= 1).
    assert report.lag_seconds >= 5 and report.events >= 1
    metrics = scrape()
    assert metrics.get_value("gpuq_event_relay_lag_seconds", relay=relay_name()) == report.lag_seconds
    assert 0 <= metrics.get_value("gpuq_event_relay_report_age_seconds", relay=relay_name()) < 3600
    RelayReport.objects.create(
        relay="gone:1", lag_seconds=1, events=1, reported_at=timezone.now() - 2 * REPORTS_KEPT
    )
    report_lag(relay_name(), 0.5, 3)
    assert list(RelayReport.objects.values_list("relay", "lag_seconds")) == [(relay_name(), 0.5)]


def test_the_daily_run_removes_old_relay_reports_and_watches_of_ended_jobs(alice, node):
    now = timezone.now()
    RelayReport.objects.create(relay="old:1", lag_seconds=1, events=1, reported_at=now - 2 * REPORTS_KEPT)
    RelayReport.objects.create(relay="new:2", lag_seconds=1, events=1, reported_at=now)
    ended, live = make_job(alice, status=Status.COMPLETED), make_job(alice, status=Status.RUNNING)
    for job in (ended, live):
        IdleWatch.objects.create(job=job, attempt=1, idle_since=now, utilization_percent=0)
    report = housekeeping.retention_run(now=now)
    assert (report["relay_reports"], report["idle_watches"]) == (1, 1)
    assert list(RelayReport.objects.values_list("relay", flat=True)) == ["new:2"]
    assert list(IdleWatch.objects.values_list("job_id", flat=True)) == [live.pk]
