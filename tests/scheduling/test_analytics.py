"""The analytics figures over a chosen range: the selector with a fixed clock, the API endpoint and the
page (which call the same selector), and the range's bounds."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client

from gpus.models import Allocation, Gpu
from scheduling import analytics
from scheduling.states import Status
from tests.conftest import api_for, make_user
from tests.factories import make_job

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # the range starts at 09:00


@pytest.fixture
def history(alice, bob, node):
    """Between 09:00 and 12:30: alice's job waited 5 s and ran 2 GPUs 09:00–11:00 (completed); bob's
    waited 2 h and ran 1 GPU 11:00–12:00 (failed); a job of bob's still waits since 09:30."""
    gpus = list(Gpu.objects.order_by("index"))
    a = make_job(
        alice,
        status=Status.COMPLETED,
        gpu_count=2,
        submitted_at=T0 - timedelta(seconds=5),
        started_at=T0,
        finished_at=T0 + timedelta(hours=2),
        team=alice.profile.team,
    )
    b = make_job(
        bob,
        status=Status.FAILED,
        submitted_at=T0,
        started_at=T0 + timedelta(hours=2),
        finished_at=T0 + timedelta(hours=3),
    )
    make_job(bob, submitted_at=T0 + timedelta(minutes=30))
    for gpu in gpus:
        Allocation.objects.create(
            job=a, gpu=gpu, allocated_at=T0, released_at=T0 + timedelta(hours=2), attempt=1
        )
    Allocation.objects.create(
        job=b,
        gpu=gpus[0],
        allocated_at=T0 + timedelta(hours=2),
        released_at=T0 + timedelta(hours=3),
        attempt=1,
    )
    return a, b


def test_the_figures_count_each_hour_of_the_range(history):
    f = analytics.figures(since=T0, until=NOW, now=NOW)
    assert [h.hour for h in f.hours] == [9, 10, 11, 12]
    # At the end of 09:00–10:00 both of bob's jobs wait; from 11:00 on (the first started) only one.
    assert f.queue_depth == [2, 1, 1, 1]
    assert f.gpu_utilization == [100.0, 100.0, 50.0, 0.0]
    assert f.finished == [0, 0, 1, 1]  # ended at 11:00 and at 12:00
    assert dict(f.waits) == {"< 10 s": 1, "< 1 min": 0, "< 10 min": 0, "< 1 h": 0, "< 6 h": 1, "≥ 6 h": 0}
    assert f.avg_wait_seconds == round((5 + 7200) / 2, 1)
    assert (f.completed, f.failed, f.failure_rate) == (1, 1, 50.0)
    assert f.gpu_hours_by_user == [("alice", 4.0), ("bob", 1.0)]
    assert f.gpu_hours_by_team == [("vision", 4.0), ("(no team)", 1.0)]


def test_the_figures_clip_to_the_range(history):
    f = analytics.figures(since=T0 + timedelta(hours=1, minutes=30), until=T0 + timedelta(hours=2), now=NOW)
    assert f.gpu_hours_by_user == [("alice", 1.0)]
    assert (f.completed, f.failed) == (0, 0)


def test_the_api_gives_the_page_figures_as_json(history, alice):
    since, until = T0.isoformat(), NOW.isoformat()
    response = api_for(alice).get("/api/v1/analytics", {"since": since, "until": until})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [h["queue_depth"] for h in body["hours"]] == [2, 1, 1, 1]
    assert [h["jobs_finished"] for h in body["hours"]] == [0, 0, 1, 1]
    assert body["hours"][0]["gpu_utilization_percent"] == 100.0
    assert body["failure_rate"] == {"completed": 1, "failed": 1, "percent": 50.0}
    assert body["waits"]["jobs_started"] == 2 and body["waits"]["buckets"][0] == {
        "label": "< 10 s",
        "jobs": 1,
    }
    assert body["gpu_hours_by_user"] == [
        {"user": "alice", "gpu_hours": 4.0},
        {"user": "bob", "gpu_hours": 1.0},
    ]
    assert body["gpu_hours_by_team"][0] == {"team": "vision", "gpu_hours": 4.0}


def test_the_api_defaults_to_the_last_24_hours(alice, node):
    body = api_for(alice).get("/api/v1/analytics").json()
    since = datetime.fromisoformat(body["since"].replace("Z", "+00:00"))
    until = datetime.fromisoformat(body["until"].replace("Z", "+00:00"))
    assert until - since == timedelta(hours=24) and len(body["hours"]) in (24, 25)


@pytest.mark.parametrize(
    ("query", "field", "code"),
    [
        ({"since": "yesterday"}, "since", 400),
        ({"until": "2026-13-45T00:00"}, "until", 400),
        # 422: two valid dates that make no range (the schema cannot say it)
        ({"since": "2026-03-02T10:00Z", "until": "2026-03-02T09:00Z"}, "since", 422),
        ({"since": "2026-01-01T00:00Z", "until": "2026-03-02T00:00Z"}, "since", 422),
        ({"until": "0001-01-01T00:00Z"}, "since", 422),
    ],
)
def test_a_bad_or_too_long_range_is_refused_naming_the_field(alice, node, query, field, code):
    response = api_for(alice).get("/api/v1/analytics", query)
    assert response.status_code == code and field in response.json(), response.content


def test_the_longest_range_is_a_setting(alice, node, settings):
    settings.GPUQ_ANALYTICS_MAX_DAYS = 2
    client = api_for(alice)
    ok = client.get("/api/v1/analytics", {"since": "2026-03-01T00:00Z", "until": "2026-03-03T00:00Z"})
    too_long = client.get("/api/v1/analytics", {"since": "2026-03-01T00:00Z", "until": "2026-03-03T01:00Z"})
    assert (ok.status_code, too_long.status_code) == (200, 422)
    assert "2 days" in too_long.json()["since"][0]


def test_the_page_shows_the_range_asked_for(history, alice):
    client = Client()
    client.force_login(alice)
    page = client.get("/analytics/", {"since": T0.isoformat(), "until": NOW.isoformat()}).content.decode()
    assert "1 failed of 2 finished" in page
    assert 'data-value="50.0"' in page and "From 2026-03-02 09:00 to 2026-03-02 12:30" in page


def test_the_page_reports_a_bad_range(alice, node):
    client = Client()
    client.force_login(alice)
    response = client.get("/analytics/", {"since": "nonsense"})
    assert response.status_code == 400 and "since:" in response.content.decode()


def test_everyone_logged_in_reads_the_analytics_and_nobody_else(node, db):
    viewer = make_user("vera", level="viewer")
    assert api_for(viewer).get("/api/v1/analytics").status_code == 200
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/analytics").status_code == 401


def test_the_endpoint_makes_a_bounded_number_of_queries_whatever_the_range(
    history, alice, django_assert_max_num_queries
):
    client = api_for(alice)
    with django_assert_max_num_queries(12):
        client.get("/api/v1/analytics", {"since": "2026-02-01T00:00Z", "until": "2026-03-03T00:00Z"})
