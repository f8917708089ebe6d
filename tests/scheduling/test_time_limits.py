"""Every job has a time limit (Slurm's DefaultTime/MaxTime): the submit's, else the template's default,
else the level's, else GPUQ_DEFAULT_TIME_LIMIT_SECONDS, never above a maximum; each job's first
estimated start is recorded once; analytics report the estimate error."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from accounts.models import Level, LevelLimits
from scheduling import analytics, services
from scheduling.first_estimates import record_first_estimates
from scheduling.limits import resolve_time_limit
from scheduling.models import JobTemplate
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for
from tests.factories import make_job

GLOBAL = 7200
E = "error"


@pytest.fixture
def limits(settings):
    settings.GPUQ_DEFAULT_TIME_LIMIT_SECONDS = GLOBAL


def _template(default=None, maximum=None) -> JobTemplate:
    return JobTemplate.objects.create(
        name="train",
        argv_template=["true"],
        default_time_limit_seconds=default,
        max_time_limit_seconds=maximum,
    )


# template default, template max, level default, level max, asked → the limit (or a 400 naming the max)
TABLE = [
    (None, None, None, None, None, GLOBAL),  # nothing set: the global default
    (None, None, 1800, None, None, 1800),  # the level's default before the global one
    (900, None, 1800, None, None, 900),  # the template's default before the level's
    (900, None, None, 600, None, 600),  # a default above the maximum is cut to it
    (None, None, None, 3600, None, 3600),  # … the global one too
    (None, None, None, None, 50000, 50000),  # asked, no maximum
    (None, None, 1800, 3600, 3600, 3600),  # asked, exactly the maximum
    (None, None, None, 3600, 3601, (E, "3600", "level researcher")),
    (None, 4000, None, 8000, 5000, (E, "4000", "template train")),  # the smaller maximum holds
    (None, 8000, None, 4000, 5000, (E, "4000", "level researcher")),
    (None, 4000, None, None, 3000, 3000),
]


@pytest.mark.parametrize("t_default, t_max, l_default, l_max, asked, expected", TABLE)
def test_the_time_limit_resolves_template_then_level_then_global(
    alice, limits, t_default, t_max, l_default, l_max, asked, expected
):
    template = _template(t_default, t_max)
    LevelLimits.objects.create(
        level=Level.RESEARCHER, default_time_limit_seconds=l_default, max_time_limit_seconds=l_max
    )
    if isinstance(expected, tuple):
        with pytest.raises(ValidationError) as error:
            resolve_time_limit(user=alice, template=template, requested=asked)
        message = " ".join(error.value.message_dict["time_limit_seconds"])
        assert expected[1] in message and expected[2] in message
    else:
        assert resolve_time_limit(user=alice, template=template, requested=asked) == expected


def test_a_raw_command_gets_its_level_default_else_the_global_one(root, limits):
    assert resolve_time_limit(user=root, template=None, requested=None) == GLOBAL
    LevelLimits.objects.create(level=Level.ADMIN, default_time_limit_seconds=60)
    assert resolve_time_limit(user=root, template=None, requested=None) == 60


def test_every_submitted_job_has_a_time_limit(root, node, limits):
    job = services.job_submit(user=root, argv=["true"])
    assert job.time_limit_seconds == GLOBAL


def test_a_submit_above_the_maximum_is_a_400_naming_the_field_and_the_maximum(alice, node, limits):
    _template(default=600, maximum=3600)
    api = api_for(alice)
    response = api.post("/api/v1/jobs", {"template": "train", "time_limit_seconds": 3601}, format="json")
    assert response.status_code == 400, response.json()
    assert "3600" in " ".join(response.json()["time_limit_seconds"])
    response = api.post("/api/v1/jobs", {"template": "train"}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["time_limit_seconds"] == 600


def test_a_template_default_above_its_maximum_is_refused(db):
    template = JobTemplate(
        name="t", argv_template=["true"], default_time_limit_seconds=10, max_time_limit_seconds=5
    )
    with pytest.raises(ValidationError) as error:
        template.clean()
    assert "default_time_limit_seconds" in error.value.message_dict


def test_admins_set_a_levels_time_limits_through_the_api(root, alice, limits):
    api = api_for(root)
    response = api.patch(
        "/api/v1/levels/researcher",
        {"default_time_limit_seconds": 600, "max_time_limit_seconds": 3600},
        format="json",
    )
    assert response.status_code == 200, response.json()
    assert (response.json()["default_time_limit_seconds"], response.json()["max_time_limit_seconds"]) == (
        600,
        3600,
    )
    rows = {row["level"]: row for row in api.get("/api/v1/levels").json()}
    assert rows["researcher"]["max_time_limit_seconds"] == 3600
    assert rows["lead"]["max_time_limit_seconds"] is None
    assert resolve_time_limit(user=alice, template=None, requested=None) == 600
    # A field left out is kept; null clears it.
    response = api.patch("/api/v1/levels/researcher", {"default_time_limit_seconds": None}, format="json")
    assert (response.json()["default_time_limit_seconds"], response.json()["max_time_limit_seconds"]) == (
        None,
        3600,
    )


@pytest.mark.parametrize(
    "body, field, code",
    [
        # a default over the maximum (given, or stored): 422, as the schema cannot say it
        (
            {"default_time_limit_seconds": 7200, "max_time_limit_seconds": 3600},
            "default_time_limit_seconds",
            422,
        ),
        ({"max_time_limit_seconds": "long"}, "max_time_limit_seconds", 400),
        ({"max_time_limit_seconds": 0}, "max_time_limit_seconds", 400),
        ({"maximum": 5}, "maximum", 400),
    ],
)
def test_bad_level_limits_are_refused_naming_the_field(root, body, field, code):
    response = api_for(root).patch("/api/v1/levels/researcher", body, format="json")
    assert response.status_code == code, response.json()
    assert field in response.json()


def test_an_unknown_level_is_a_400(root):
    response = api_for(root).patch("/api/v1/levels/wizard", {"max_time_limit_seconds": 5}, format="json")
    assert response.status_code == 400
    assert "level" in response.json()


# --- first estimates -------------------------------------------------------------------------------------

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_a_first_estimate_is_set_once_and_never_overwritten(alice, db):
    a, b = make_job(alice), make_job(alice)
    assert record_first_estimates({a.pk: T}) == 1
    assert record_first_estimates({a.pk: T + timedelta(hours=1), b.pk: T + timedelta(hours=2)}) == 1
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.first_estimated_start, b.first_estimated_start) == (T, T + timedelta(hours=2))


def test_the_tick_records_each_waiting_jobs_first_estimate_once(alice, node, limits):
    running = make_job(alice, gpu_count=2, time_limit_seconds=600)
    waiting = make_job(alice, gpu_count=2, time_limit_seconds=600)
    now = datetime.now(UTC)
    tick(now)
    running.refresh_from_db()
    waiting.refresh_from_db()
    assert running.status == Status.DISPATCHED and running.first_estimated_start is None  # started at once
    assert waiting.status == Status.PENDING
    estimated = waiting.first_estimated_start
    assert estimated is not None and estimated > now
    tick(now + timedelta(seconds=300))  # later ticks estimate again, but the first estimate stays
    waiting.refresh_from_db()
    assert waiting.first_estimated_start == estimated


def test_a_job_whose_start_is_unknown_gets_no_first_estimate(alice, node, limits):
    make_job(alice, gpu_count=2)  # starts at once, without a time limit (a job from before they were kept)
    waiting = make_job(alice, gpu_count=2, time_limit_seconds=600)
    now = datetime.now(UTC)
    tick(now)
    tick(now + timedelta(seconds=60))
    waiting.refresh_from_db()
    assert waiting.status == Status.PENDING and waiting.first_estimated_start is None  # unknown: none yet


# --- the estimate error in analytics ---------------------------------------------------------------------

NOW = datetime(2026, 3, 2, 12, 30, tzinfo=UTC)
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def estimated(alice, node):
    """Five jobs started in the range, against their first estimates: -15 min, 0, +5 min, +20 min, +1 h;
    one started without an estimate, one with an estimate started before the range, one still waiting."""
    for i, error in enumerate([-900, 0, 300, 1200, 3600]):
        started = T0 + timedelta(minutes=10 * (i + 1))
        make_job(
            alice,
            status=Status.COMPLETED,
            submitted_at=T0,
            started_at=started,
            finished_at=started + timedelta(minutes=5),
            first_estimated_start=started - timedelta(seconds=error),
        )
    make_job(alice, status=Status.RUNNING, submitted_at=T0, started_at=T0 + timedelta(hours=1))
    make_job(
        alice,
        status=Status.RUNNING,
        submitted_at=T0 - timedelta(hours=2),
        started_at=T0 - timedelta(hours=1),
        first_estimated_start=T0 - timedelta(hours=3),
    )
    make_job(alice, submitted_at=T0, first_estimated_start=T0 + timedelta(hours=9))


def test_the_estimate_error_figures_are_exact(estimated):
    f = analytics.figures(since=T0, until=NOW, now=NOW)
    assert f.estimate_error == analytics.EstimateError(
        jobs=5,
        median_seconds=300.0,
        p90_seconds=3600.0,  # nearest rank: the 5th of 5
        on_time_percent=40.0,  # 0 and +5 min
        later_percent=40.0,  # +20 min and +1 h
        earlier_percent=20.0,  # -15 min
    )


def test_the_estimate_error_of_an_even_count_takes_the_middle_two():
    e = analytics.estimate_error([100.0, -50.0, 700.0, 10.0])
    assert (e.median_seconds, e.p90_seconds) == (55.0, 700.0)
    assert analytics.estimate_error([]) is None


def test_the_api_and_the_page_show_the_estimate_error(estimated, alice, client):
    body = api_for(alice).get("/api/v1/analytics", {"since": T0.isoformat(), "until": NOW.isoformat()}).json()
    assert body["estimate_error"] == {
        "jobs": 5,
        "median_seconds": 300.0,
        "p90_seconds": 3600.0,
        "on_time_percent": 40.0,
        "later_percent": 40.0,
        "earlier_percent": 20.0,
    }
    client.force_login(alice)
    page = client.get("/analytics/", {"since": T0.isoformat(), "until": NOW.isoformat()})
    assert page.status_code == 200
    text = page.content.decode()
    assert (
        "Estimate error" in text
        and "median" in text
        and "40.0% within ±10 min" in text.replace("</strong>", "").replace("<strong>", "")
    )


def test_without_estimates_the_api_says_null(alice, node):
    body = api_for(alice).get("/api/v1/analytics").json()
    assert body["estimate_error"] is None
