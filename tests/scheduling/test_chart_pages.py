"""The pages that carry charts, in-process: the job page's chart section, the compare page (each job
checked, bad input a 400 naming the parameter, a sweep's jobs), and the analytics page's shared scales."""

from django.test import Client

from scheduling import analytics
from scheduling.models import Sweep
from scheduling.states import Status
from tests.factories import make_job


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_job_page_has_its_chart_section_fed_by_the_metrics_api(alice):
    job = make_job(alice, status=Status.RUNNING)
    page = client_for(alice).get(f"/jobs/{job.pk}/").content.decode()
    assert (
        f'data-metrics="/api/v1/jobs/{job.pk}/metrics"' in page and "vendor/uplot/uPlot.iife.min.js" in page
    )


def test_the_compare_page_names_the_jobs_it_may_not_show(alice, bob):
    mine = [make_job(alice, name=f"lr-{i}") for i in (1, 2)]
    theirs = make_job(bob, name="secret")
    answer = client_for(alice).get(f"/jobs/compare/?jobs={mine[0].pk},{mine[1].pk},{theirs.pk}&series=loss")
    page = answer.content.decode()
    assert answer.status_code == 200
    assert f"/api/v1/jobs/{mine[1].pk}/metrics" in page and "lr-2" in page
    assert f"Not found or not yours to read: #{theirs.pk}" in page
    assert "secret" not in page and f"/api/v1/jobs/{theirs.pk}/metrics" not in page


def test_bad_compare_input_is_a_400_naming_the_parameter(alice):
    client = client_for(alice)
    for query in ("", "?jobs=x", "?jobs=" + ",".join(str(i) for i in range(1, 30)), "?sweep=x"):
        answer = client.get(f"/jobs/compare/{query}")
        assert answer.status_code == 400, query
        assert ("sweep:" if "sweep" in query else "jobs:") in answer.content.decode()


def test_a_sweeps_jobs_are_compared_and_only_by_who_may_see_the_sweep(alice, bob):
    sweep = Sweep.objects.create(owner=alice, name="lr", size=2)
    jobs = [make_job(alice, name=f"lr[{i}]", sweep=sweep, array_index=i) for i in (0, 1)]
    page = client_for(alice).get(f"/jobs/compare/?sweep={sweep.pk}").content.decode()
    assert all(f"/api/v1/jobs/{job.pk}/metrics" in page for job in jobs)
    assert client_for(bob).get(f"/jobs/compare/?sweep={sweep.pk}").status_code == 404


def test_analytics_charts_of_one_unit_share_a_round_scale_and_percentages_run_to_100():
    charts = analytics.shared_scales(
        [
            analytics.Chart("Failure rate", "%", [("failed", 28.6)]),
            analytics.Chart("GPU-hours per user", "h", [("alice", 3.0)]),
            analytics.Chart("GPU-hours per team", "h", [("vision", 17.0)]),
        ]
    )
    assert [chart.scale_max for chart in charts] == [100, 20, 20]
    assert charts[0].spec == {
        "title": "Failure rate",
        "unit": "%",
        "labels": ["failed"],
        "values": [28.6],
        "max": 100,
    }
    assert [analytics.round_up(v) for v in (0, 0.3, 1, 2.2, 7, 130)] == [1, 0.5, 1, 2.5, 10, 200]
