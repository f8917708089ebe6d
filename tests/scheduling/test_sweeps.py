"""Bulk submission and sweeps: POST /api/v1/jobs with a list or a template sweep (all or nothing, errors
by index and field, bounded size and queries, Idempotency-Key), and a sweep watched, cancelled and
depended on as one."""

import pytest
from django.contrib.auth.models import Permission

from gpus.models import Allocation
from scheduling.models import Event, IdempotencyKey, Job, JobStateTransition, JobTemplate, Sweep
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def train(db):
    """A template with two parameters, as a learning-rate sweep would use."""
    return JobTemplate.objects.create(
        name="train",
        argv_template=["/bin/echo", "--lr", "{lr}", "--bs", "{bs}"],
        params_schema={
            "type": "object",
            "properties": {"lr": {"type": "number"}, "bs": {"type": "integer"}},
            "required": ["lr", "bs"],
        },
    )


@pytest.fixture
def raw(alice):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    return alice


def post(user, body, **headers):
    return api_for(user).post("/api/v1/jobs", body, format="json", **headers)


def test_a_list_makes_one_job_each_under_one_sweep_named_like_an_array(alice, node, train):
    body = [{"template": "train", "params": {"lr": lr, "bs": 32}} for lr in (0.1, 0.01, 0.001)]
    response = post(alice, body)
    assert response.status_code == 201, response.json()
    answer = response.json()
    sweep = Sweep.objects.get()
    assert answer["sweep"]["id"] == sweep.pk and answer["sweep"]["size"] == 3
    assert answer["sweep"]["counts"] == {"pending": 3} and answer["sweep"]["finished"] is False
    jobs = list(Job.objects.order_by("array_index"))
    assert [j.name for j in jobs] == ["train[0]", "train[1]", "train[2]"]
    assert [j["id"] for j in answer["jobs"]] == [j.pk for j in jobs]
    assert [j.argv[2] for j in jobs] == ["0.1", "0.01", "0.001"]
    assert {j.sweep_id for j in jobs} == {sweep.pk} and {j.owner_id for j in jobs} == {alice.pk}
    # Each job is recorded as a single submit records it: its first transition and its event.
    assert JobStateTransition.objects.filter(from_status="", to_status=Status.PENDING).count() == 3
    assert Event.objects.filter(kind=Event.Kind.JOB, job_id__in=[j.pk for j in jobs]).count() == 3


def test_a_list_is_all_or_nothing_each_error_naming_its_index_and_field(alice, node, train):
    body = [
        {"template": "train", "params": {"lr": 0.1, "bs": 32}},
        {"template": "train", "params": {"lr": 0.1, "bs": 32}, "gpu_count": 0},  # the serializer's check
        {"template": "train", "params": {"lr": 0.1, "bs": 32}},
        {"template": "train", "params": {"lr": "fast", "bs": 32}},  # the template's schema (service)
        {"template": "nope"},
    ]
    response = post(alice, body)
    assert response.status_code == 400
    errors = response.json()["errors"]
    assert set(errors) == {"1", "4"}  # the serializer's errors come first, for every item at once
    assert "gpu_count" in errors["1"] and "template" in errors["4"]
    assert Job.objects.count() == 0 and Sweep.objects.count() == 0
    del body[4], body[1]
    response = post(alice, body)
    assert response.status_code == 422  # well formed; the template's own schema refuses its params
    assert list(response.json()["errors"]) == ["2"] and "params" in response.json()["errors"]["2"]
    assert Job.objects.count() == 0 and Sweep.objects.count() == 0


def test_a_job_the_user_may_not_submit_refuses_the_whole_list_naming_it(alice, node, train):
    body = [{"template": "train", "params": {"lr": 0.1, "bs": 32}}, {"argv": ["/bin/true"]}]
    response = post(alice, body)
    assert response.status_code == 403 and response.json()["detail"].startswith("job 1:")
    assert Job.objects.count() == 0


def test_a_viewer_submits_no_list(viewer, node, train):
    assert post(viewer, [{"template": "train", "params": {"lr": 1, "bs": 1}}]).status_code == 403


def test_dry_run_is_refused_in_a_list(raw, node):
    response = post(raw, [{"argv": ["/bin/true"]}, {"argv": ["/bin/true"], "dry_run": True}])
    assert response.status_code == 400 and "dry_run" in response.json()["errors"]["1"]


def test_a_list_is_bounded_by_the_setting(raw, node, train, settings):
    settings.GPUQ_BULK_MAX_JOBS = 3
    response = post(raw, [{"argv": ["/bin/true"]}] * 4)
    assert response.status_code == 400 and "GPUQ_BULK_MAX_JOBS" in response.json()["jobs"][0]
    assert post(raw, []).status_code == 400
    response = post(raw, {"template": "train", "sweep": {"grid": {"a": [1, 2], "b": [1, 2]}}})
    assert response.status_code == 400 and "GPUQ_BULK_MAX_JOBS" in str(response.json()["sweep"])
    assert post(raw, [{"argv": ["/bin/true"]}] * 3).status_code == 201


def test_a_grid_sweep_makes_one_job_per_combination(alice, node, train):
    body = {"template": "train", "name": "lr-sweep", "sweep": {"grid": {"lr": [0.1, 0.01], "bs": [32, 64]}}}
    response = post(alice, body)
    assert response.status_code == 201, response.json()
    jobs = list(Job.objects.order_by("array_index"))
    assert [j.params for j in jobs] == [
        {"lr": 0.1, "bs": 32},
        {"lr": 0.1, "bs": 64},
        {"lr": 0.01, "bs": 32},
        {"lr": 0.01, "bs": 64},
    ]
    assert [j.name for j in jobs] == [f"lr-sweep[{i}]" for i in range(4)]
    sweep = Sweep.objects.get()
    assert (sweep.name, sweep.template, sweep.size) == ("lr-sweep", train, 4)


def test_a_sweep_of_sets_merges_each_over_the_common_params_and_fields(alice, node, train):
    body = {
        "template": "train",
        "params": {"bs": 16},
        "gpu_count": 2,
        "sweep": {"sets": [{"lr": 0.5}, {"lr": 0.25, "bs": 8}], "grid": {"lr": [1]}},
    }
    assert post(alice, body).status_code == 201
    jobs = list(Job.objects.order_by("array_index"))
    assert [j.params for j in jobs] == [{"bs": 16, "lr": 0.5}, {"bs": 8, "lr": 0.25}, {"bs": 16, "lr": 1}]
    assert {j.gpu_count for j in jobs} == {2}


def test_a_sweep_names_its_bad_field_or_parameter_set(alice, node, train):
    response = post(alice, {"template": "train", "sweep": {"grid": {"lr": []}}})
    assert response.status_code == 400 and "grid" in response.json()["sweep"]
    response = post(alice, {"template": "train", "sweep": {}})
    assert response.status_code == 400 and "sweep" in response.json()
    response = post(alice, {"template": "train", "sweep": {"sets": [{"lr": 1, "bs": 1}, {"lr": 1}]}})
    assert response.status_code == 422 and list(response.json()["errors"]) == ["1"]
    response = post(alice, {"argv": ["/bin/true"], "sweep": {"sets": [{}]}})
    assert response.status_code == 400 and "template" in response.json()
    assert Job.objects.count() == 0


def test_a_sweep_is_watched_with_counts_by_those_who_may_see_it(alice, bob, node, train):
    made = post(alice, {"template": "train", "sweep": {"grid": {"lr": [1, 2, 3], "bs": [1]}}}).json()
    sweep_id = made["sweep"]["id"]
    api = api_for(alice)
    Job.objects.filter(pk=made["jobs"][0]["id"]).update(status=Status.COMPLETED)
    answer = api.get(f"/api/v1/sweeps/{sweep_id}").json()
    assert answer["counts"] == {"pending": 2, "completed": 1} and answer["finished"] is False
    listed = api.get(f"/api/v1/jobs?sweep={sweep_id}").json()["results"]
    assert sorted(j["array_index"] for j in listed) == [0, 1, 2] and {j["sweep"] for j in listed} == {
        sweep_id
    }
    assert api_for(bob).get(f"/api/v1/sweeps/{sweep_id}").status_code == 404
    assert api_for(bob).get(f"/api/v1/jobs?sweep={sweep_id}").json()["results"] == []
    assert api.get("/api/v1/jobs?sweep=x").status_code == 400


def test_cancelling_a_sweep_cancels_all_its_unfinished_jobs(alice, bob, node, train):
    made = post(alice, {"template": "train", "sweep": {"grid": {"lr": [1, 2, 3, 4], "bs": [1]}}}).json()
    sweep_id = made["sweep"]["id"]
    Job.objects.filter(pk=made["jobs"][0]["id"]).update(status=Status.COMPLETED)
    other = post(alice, {"template": "train", "params": {"lr": 1, "bs": 1}}).json()["id"]
    assert api_for(bob).post(f"/api/v1/sweeps/{sweep_id}/cancel", {}).status_code == 404
    response = api_for(alice).post(
        f"/api/v1/sweeps/{sweep_id}/cancel", {"reason": "wrong data"}, format="json"
    )
    assert response.status_code == 200, response.json()
    assert response.json()["cancelled"] == 3
    assert response.json()["counts"] == {"completed": 1, "cancelled": 3} and response.json()["finished"]
    assert Job.objects.get(pk=other).status == Status.PENDING  # not of the sweep
    assert JobStateTransition.objects.filter(to_status=Status.CANCELLED, reason="wrong data").count() == 3


def test_cancelling_a_sweep_stops_its_dispatched_jobs_too(alice, node, train):
    made = post(alice, {"template": "train", "sweep": {"grid": {"lr": [1, 2, 3], "bs": [1]}}}).json()
    tick()  # two GPUs: two of the three are dispatched
    statuses = sorted(Job.objects.filter(sweep_id=made["sweep"]["id"]).values_list("status", flat=True))
    assert statuses == [Status.DISPATCHED, Status.DISPATCHED, Status.PENDING]
    response = api_for(alice).post(f"/api/v1/sweeps/{made['sweep']['id']}/cancel", {}, format="json")
    assert response.json()["cancelled"] == 3 and response.json()["counts"] == {"cancelled": 3}
    assert not Allocation.objects.filter(released_at__isnull=True).exists()


def test_cancelling_a_sweep_makes_a_bounded_number_of_queries(
    alice, node, train, django_assert_max_num_queries
):
    body = {
        "template": "train",
        "start_after": "2099-01-01T00:00:00Z",
        "sweep": {"grid": {"lr": list(range(300)), "bs": [1]}},
    }
    sweep_id = post(alice, body).json()["sweep"]["id"]
    client = api_for(alice)
    with django_assert_max_num_queries(25):
        response = client.post(f"/api/v1/sweeps/{sweep_id}/cancel", {}, format="json")
    assert response.json()["cancelled"] == 300
    assert Event.objects.filter(kind=Event.Kind.JOB, data__status="cancelled").count() == 300


def test_a_job_depending_on_a_sweep_waits_for_all_its_jobs(alice, node, train):
    made = post(alice, {"template": "train", "sweep": {"grid": {"lr": [1, 2], "bs": [1]}}}).json()
    sweep_id = made["sweep"]["id"]
    Job.objects.filter(sweep_id=sweep_id).update(status=Status.PAUSED)  # held, so the tick starts none
    after = post(alice, {"template": "train", "params": {"lr": 9, "bs": 9}, "depends_on_sweeps": [sweep_id]})
    assert after.status_code == 201, after.json()
    job = Job.objects.get(pk=after.json()["id"])
    assert sorted(job.depends_on.values_list("pk", flat=True)) == [j["id"] for j in made["jobs"]]
    tick()
    job.refresh_from_db()
    assert (job.status, job.wait_reason) == (Status.PENDING, "dependency")
    Job.objects.filter(pk=made["jobs"][0]["id"]).update(status=Status.COMPLETED)
    tick()
    job.refresh_from_db()
    assert (job.status, job.wait_reason) == (Status.PENDING, "dependency")  # one of two done: still waits
    Job.objects.filter(sweep_id=sweep_id).update(status=Status.COMPLETED)
    tick()
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED


def test_a_sweep_one_may_not_see_is_no_dependency(alice, bob, node, train):
    sweep_id = post(alice, {"template": "train", "sweep": {"sets": [{"lr": 1, "bs": 1}]}}).json()["sweep"][
        "id"
    ]
    response = post(bob, {"template": "train", "params": {"lr": 1, "bs": 1}, "depends_on_sweeps": [sweep_id]})
    assert response.status_code == 422 and f"no sweep {sweep_id}" in response.json()["depends_on_sweeps"][0]
    response = post(
        bob, [{"template": "train", "params": {"lr": 1, "bs": 1}, "depends_on_sweeps": [sweep_id]}]
    )
    assert response.status_code == 422 and "depends_on_sweeps" in response.json()["errors"]["0"]


def test_a_bulk_retry_with_the_same_key_returns_the_first_sweep(raw, node):
    body = [{"argv": ["/bin/true"]}, {"argv": ["/bin/false"]}]
    first = post(raw, body, HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert first.status_code == 201
    again = post(raw, body, HTTP_IDEMPOTENCY_KEY="bulk-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Sweep.objects.count() == 1 and Job.objects.count() == 2
    assert IdempotencyKey.objects.get().sweep_id == first.json()["sweep"]["id"]
    assert post(raw, body[:1], HTTP_IDEMPOTENCY_KEY="bulk-1").status_code == 422


@pytest.mark.parametrize("count", [5, 200])
def test_a_bulk_submission_makes_a_bounded_number_of_queries(
    count, alice, node, train, django_assert_max_num_queries
):
    earlier = post(alice, {"template": "train", "params": {"lr": 1, "bs": 1}}).json()["id"]
    body = [
        {"template": "train", "params": {"lr": i, "bs": 1}, "depends_on": [earlier]} for i in range(count)
    ]
    client = api_for(alice)
    with django_assert_max_num_queries(30):
        assert client.post("/api/v1/jobs", body, format="json").status_code == 201
    assert Job.objects.filter(sweep__isnull=False).count() == count


def test_a_waiting_job_that_moved_meanwhile_is_left_out_of_a_cancel(alice, node, train):
    from scheduling.transitions import transition_waiting

    made = post(
        alice,
        [{"template": "train", "params": {"lr": 1, "bs": 1}, "start_after": "2099-01-01T00:00:00Z"}] * 2,
    )
    jobs = list(Job.objects.filter(sweep_id=made.json()["sweep"]["id"]).order_by("pk"))
    Job.objects.filter(pk=jobs[1].pk).update(status=Status.PAUSED)  # another writer, after our read
    moved = transition_waiting(jobs, Status.CANCELLED, by=alice, reason="r")
    assert [j.pk for j in moved] == [jobs[0].pk]
    assert Job.objects.get(pk=jobs[1].pk).status == Status.PAUSED
    assert JobStateTransition.objects.filter(to_status=Status.CANCELLED).count() == 1
