"""GET /api/v1/jobs/{id}/metrics: one attempt's series, for those who may read the job, strict about its
parameters, bounded, incremental with `after`, in a fixed number of queries."""

from datetime import UTC, datetime, timedelta

import pytest
from rest_framework.test import APIClient

from scheduling import timeseries
from scheduling.models import MetricPoint
from scheduling.states import Status
from tests.conftest import api_for
from tests.factories import make_job

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def trained(alice):
    """Alice's job: three loss reports in attempt 1, one in attempt 2."""
    job = make_job(alice, status=Status.RUNNING, attempt=2)
    known: set[str] = set()
    for i, loss in enumerate((3.0, 2.0, 1.0)):
        timeseries.record_progress(
            job_id=job.pk,
            attempt=1,
            progress={"loss": loss, "acc": i / 10},
            at=T0 + timedelta(seconds=i),
            known=known,
        )
    timeseries.record_progress(job_id=job.pk, attempt=2, progress={"loss": 9.0}, at=T0, known=set())
    return job


def get(user, job, query: str = ""):
    return api_for(user).get(f"/api/v1/jobs/{job.pk}/metrics{query}")


def test_the_latest_attempt_by_default_and_any_earlier_one_when_asked(alice, trained):
    latest = get(alice, trained).json()
    assert (latest["attempt"], latest["attempts"]) == (2, 2)
    assert latest["series"] == [
        {"name": "loss", "unit": "", "points": [{"at": "2026-03-01T12:00:00Z", "value": 9.0}]}
    ]
    first = get(alice, trained, "?attempt=1&series=loss").json()
    assert [p["value"] for p in first["series"][0]["points"]] == [3.0, 2.0, 1.0]
    assert [s["name"] for s in first["series"]] == ["loss"]


def test_after_answers_only_what_came_since(alice, trained):
    first = get(alice, trained, "?attempt=1").json()
    assert {s["name"] for s in first["series"]} == {"loss", "acc"}
    again = get(alice, trained, f"?attempt=1&after={first['last']}").json()
    assert again["series"] == [] and again["last"] == first["last"]
    timeseries.record_progress(
        job_id=trained.pk, attempt=1, progress={"loss": 0.5}, at=T0 + timedelta(seconds=9), known=set()
    )
    since = get(alice, trained, f"?attempt=1&after={first['last']}").json()
    assert [(s["name"], [p["value"] for p in s["points"]]) for s in since["series"]] == [("loss", [0.5])]


def test_gpu_series_say_their_units(alice):
    job = make_job(alice, status=Status.RUNNING)
    for series in ("gpu0.utilization_percent", "gpu0.memory_used_mb"):
        MetricPoint.objects.create(job=job, attempt=1, series=series, at=T0, value=5)
    units = {s["name"]: s["unit"] for s in get(alice, job).json()["series"]}
    assert units == {"gpu0.utilization_percent": "%", "gpu0.memory_used_mb": "MiB"}


def test_only_those_who_may_read_the_job_see_its_metrics(alice, bob, root, trained):
    assert get(bob, trained).status_code == 404
    assert get(root, trained).status_code == 200
    assert get(alice, trained).status_code == 200
    assert APIClient().get(f"/api/v1/jobs/{trained.pk}/metrics").status_code in (401, 403)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("?attempt=3", "attempt"),
        ("?attempt=0", "attempt"),
        ("?attempt=x", "attempt"),
        ("?after=-1", "after"),
        ("?series=", "series"),
        ("?series=" + "x" * 101, "series"),
        ("?series=" + ",".join(f"s{i}" for i in range(51)), "series"),
        ("?step=1", "step"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(alice, trained, query, field):
    answer = get(alice, trained, query)
    assert answer.status_code == 400 and field in answer.json(), answer.content


def test_a_fixed_number_of_queries_however_many_points(
    alice, trained, django_assert_max_num_queries, settings
):
    known: set[str] = set()
    for i in range(300):
        timeseries.record_progress(
            job_id=trained.pk,
            attempt=2,
            progress={f"m{i % 10}": float(i)},
            at=T0 + timedelta(seconds=i),
            known=known,
        )
    client = api_for(alice)
    with django_assert_max_num_queries(6):  # token, user, level/team, job, points
        answer = client.get(f"/api/v1/jobs/{trained.pk}/metrics")
    assert len(answer.json()["series"]) == 11


def test_every_series_answered_is_bounded_by_the_setting(alice, settings):
    settings.GPUQ_JOB_METRICS_MAX_POINTS = 10
    job = make_job(alice, status=Status.RUNNING)
    known: set[str] = set()
    for i in range(50):
        timeseries.record_progress(
            job_id=job.pk, attempt=1, progress={"loss": i}, at=T0 + timedelta(seconds=i), known=known
        )
    body = get(alice, job).json()
    assert body["max_points"] == 10 and len(body["series"][0]["points"]) <= 10
