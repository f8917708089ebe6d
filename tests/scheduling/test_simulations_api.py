"""What-if simulations through the API (admins only, strict input), from a trace and from history; a
bigger run as a django-q2 task (run in this process, as a worker would) with progress; the admin page;
retention."""

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from django_q.conf import Conf

from scheduling import housekeeping, simulations
from scheduling.models import Job, Simulation
from scheduling.policies import set_policy
from scheduling.states import Status
from scheduling.traces import to_csv
from tests.conftest import api_for
from tests.scheduling.test_simulator import TRACE

CSV = to_csv(TRACE)
SJF = {"sjf": {"backfill": {}, "ordering": {"within_priority": "shortest_limit"}}}


def post(user, body):
    return api_for(user).post("/api/v1/simulations", body, format="json")


def test_a_trace_is_compared_under_fifo_backfill_the_present_policies_and_a_proposal(root):
    set_policy("concurrency", enabled=True, config={"max_concurrent": 1})
    set_policy("retry", enabled=True, config={})
    response = post(root, {"trace": CSV, "trace_name": "hand-made", "policies": SJF, "nodes": [3]})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["status"] == "done" and body["progress"] == 1.0 and body["source"] == "hand-made"
    result = body["result"]
    assert [row["set"] for row in result["table"]] == ["strict FIFO", "backfill", "present", "sjf"]
    assert result["ignored_present_policies"] == ["retry"]
    assert result["sets"]["strict FIFO"]["wait"]["mean"] == 110
    assert result["sets"]["backfill"]["out_of_order"] == 1
    assert result["sets"]["present"]["policies"] == {"concurrency": {"max_concurrent": 1}}
    table = {row["set"]: row for row in result["table"]}
    assert table["strict FIFO"]["gpus_1"] == "2.9/3.0/3" and table["backfill"]["gpus_1"] == "1.4/2.8/3"
    assert table["sjf"]["out_of_order"] == 1
    assert api_for(root).get(f"/api/v1/simulations/{body['id']}").json()["result"] == result


def test_history_replays_the_jobs_that_ran_in_the_last_days(root, alice, node):
    now = timezone.now()
    for i, (submitted, ran) in enumerate([(300, 60), (200, 30), (100000 * 9, 10)]):
        at = now - timedelta(seconds=submitted)
        Job.objects.create(
            owner=alice, argv=["true"], status=Status.COMPLETED, submitted_at=at,
            started_at=at + timedelta(seconds=i), finished_at=at + timedelta(seconds=i + ran),
        )  # fmt: skip
    response = post(root, {"days": 7})
    assert response.status_code == 201, response.json()
    result = response.json()["result"]
    assert result["jobs"] == 2  # the third was submitted 10 days ago
    assert result["nodes"] == [2]  # the registered node's GPUs
    assert result["sets"]["strict FIFO"]["wait_by_user"]["alice"]["jobs"] == 2


def test_a_bigger_run_is_a_task_that_reports_progress(
    root, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.GPUQ_SIMULATION_INLINE_JOBS = 1
    monkeypatch.setattr(Conf, "SYNC", True)  # django-q2 runs the task here, as a worker would
    seen = []
    real = simulations.simulator.compare

    def watched(*args, progress, **kwargs):
        def spy(fraction):
            progress(fraction)
            seen.append(Simulation.objects.get().progress)

        return real(*args, progress=spy, **kwargs)

    monkeypatch.setattr(simulations.simulator, "compare", watched)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = post(root, {"trace": CSV, "nodes": [3]})
    assert response.status_code == 202
    sim_id = response.json()["id"]
    assert api_for(root).get(f"/api/v1/simulations/{sim_id}").json()["status"] == "queued"
    for callback in callbacks:
        callback()
    body = api_for(root).get(f"/api/v1/simulations/{sim_id}").json()
    assert body["status"] == "done" and body["result"]["jobs"] == 4
    assert 0 < seen[0] < seen[-1] <= 0.99  # it moved while running
    assert Simulation.objects.get().trace == ""  # the trace is not kept once read


def test_only_admins_may_simulate(alice, viewer):
    for user in (alice, viewer):
        assert post(user, {"trace": CSV, "nodes": [3]}).status_code == 403
        assert api_for(user).get("/api/v1/simulations").status_code == 403
        assert api_for(user).get("/api/v1/simulations/1").status_code == 403
    assert Client().get("/api/v1/simulations").status_code in (401, 403)


# 400: what the schema rules out; 422: what only the content says (the trace's CSV, the policies' own
# rules, a cluster of no GPUs); 409: the state (no node registered, no history to replay).
@pytest.mark.parametrize(
    "body, status, field, message",
    [
        ({"trace": CSV, "days": 3, "nodes": [3]}, 400, "days", "either days"),
        ({"nodes": [3]}, 400, "days", "either days"),
        ({"days": 0}, 400, "days", "must be from 1"),
        ({"days": "7"}, 400, "days", "must be an integer"),
        ({"days": 100000}, 400, "days", "from 1 to 90"),
        ({"trace": CSV, "nodes": [0]}, 400, "nodes", "must be from 1 to 1024"),
        ({"trace": CSV, "nodes": []}, 422, "nodes", "a list of 1 to"),
        ({"trace": CSV, "nodes": [3], "colour": 1}, 400, "colour", "unknown field"),
        ({"trace": "submit_time,gpus\n", "nodes": [3]}, 422, "trace", "missing column(s) runtime, user"),
        ({"trace": "submit_time,gpus,runtime,user\n", "nodes": [3]}, 422, "trace", "no jobs"),
        ({"trace": CSV, "nodes": [3], "policies": []}, 422, "policies", "must be an object"),
        (
            {"trace": CSV, "nodes": [3], "policies": {"a": {"quota": {}}}},
            422,
            "policies",
            "'quota' is not simulated",
        ),
        (
            {"trace": CSV, "nodes": [3], "policies": {"backfill": {}}},
            422,
            "policies",
            "not one of the baselines",
        ),
        (
            {"trace": CSV, "nodes": [3], "policies": {"a": {"ordering": {"within_priority": "random"}}}},
            422,
            "policies",
            "a: ordering: ",
        ),
        (
            {"trace": CSV, "nodes": [3], "policies": {str(i): {} for i in range(9)}},
            422,
            "policies",
            "at most 8",
        ),
    ],
)
def test_bad_input_is_refused_naming_the_field(root, body, status, field, message):
    response = post(root, body)
    assert response.status_code == status, response.json()
    assert message in str(response.json()[field]), response.json()
    assert not Simulation.objects.exists()


def test_no_history_and_no_nodes_are_409s(root):
    no_history = post(root, {"days": 7, "nodes": [1]})
    assert no_history.status_code == 409 and "no job ran" in no_history.json()["days"][0]
    no_nodes = post(root, {"trace": CSV})
    assert no_nodes.status_code == 409 and "no node is registered" in no_nodes.json()["nodes"][0]


def test_the_list_is_paged_newest_first_in_few_queries(root, django_assert_max_num_queries):
    for _ in range(3):
        Simulation.objects.create(created_by=root, source="t", policy_sets={}, result={"big": "x" * 1000})
    client = api_for(root)
    with django_assert_max_num_queries(6):
        page = client.get("/api/v1/simulations?limit=2").json()
    assert page["count"] == 3 and len(page["results"]) == 2
    assert page["results"][0]["id"] > page["results"][1]["id"]
    assert "result" not in page["results"][0]


def test_the_admin_page_shows_the_comparison_table_to_admins_only(root, alice):
    sim_id = post(root, {"trace": CSV, "nodes": [3], "policies": SJF}).json()["id"]
    browser = Client()
    browser.force_login(root)
    page = browser.get(f"/admin/scheduling/simulation/{sim_id}/change/").content.decode()
    assert "strict FIFO" in page and "sjf" in page and "2.9/3.0/3" in page
    alice.is_staff = True
    alice.save()
    browser.force_login(alice)
    assert browser.get(f"/admin/scheduling/simulation/{sim_id}/change/").status_code in (302, 403)


def test_the_admin_add_form_runs_a_simulation(root):
    browser = Client()
    browser.force_login(root)
    response = browser.post(
        "/admin/scheduling/simulation/add/",
        {"days": "", "trace_csv": CSV, "policies": '{"sjf": {"backfill": {}}}', "nodes": "3"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    sim = Simulation.objects.get()
    assert sim.status == "done" and [r["set"] for r in sim.result["table"]] == [
        "strict FIFO",
        "backfill",
        "present",
        "sjf",
    ]
    bad = browser.post(
        "/admin/scheduling/simulation/add/", {"days": "", "trace_csv": "", "policies": "{}", "nodes": "3"}
    )
    assert bad.status_code == 200 and "either days" in bad.content.decode()


def test_retention_removes_old_simulations(root, settings):
    settings.GPUQ_SIMULATION_KEEP_DAYS = 30
    now = timezone.now()
    old = Simulation.objects.create(source="t", policy_sets={}, created_at=now - timedelta(days=31))
    new = Simulation.objects.create(source="t", policy_sets={}, created_at=now - timedelta(days=29))
    assert housekeeping.retention_run(now=now)["simulations"] == 1
    assert list(Simulation.objects.values_list("pk", flat=True)) == [new.pk]
    assert old.pk != new.pk
