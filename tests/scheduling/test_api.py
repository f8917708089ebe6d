"""The jobs API: submit (template or raw argv), validation, visibility, cancel, log, queue, schema."""

import pytest
from django.contrib.auth.models import Permission

from scheduling.environment import absolute_program
from scheduling.logship import LogShipper
from scheduling.models import Job, JobTemplate
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for
from tests.factories import make_job


@pytest.fixture
def train(db):
    return JobTemplate.objects.create(
        name="train",
        argv_template=["python3", "train.py", "--lr", "{lr}", "--name={run}"],
        params_schema={
            "type": "object",
            "properties": {"lr": {"type": "number", "exclusiveMinimum": 0}, "run": {"type": "string"}},
            "required": ["lr", "run"],
            "additionalProperties": False,
        },
        default_gpu_count=2,
        default_time_limit_seconds=3600,
    )


def submit(user, **body):
    return api_for(user).post("/api/v1/jobs", body, format="json")


def test_a_template_submission_fills_argv_elements(alice, node, train):
    response = submit(alice, template="train", params={"lr": 0.001, "run": "x; rm -rf /"})
    assert response.status_code == 201, response.json()
    body = response.json()
    # The program is resolved on the server (a job's PATH cannot choose it).
    assert body["argv"] == [
        absolute_program("python3", field="argv_template"),
        "train.py",
        "--lr",
        "0.001",
        "--name=x; rm -rf /",
    ]
    assert (body["gpu_count"], body["time_limit_seconds"], body["status"]) == (2, 3600, "pending")
    assert body["priority"] == 10  # a researcher's default
    assert body["transitions"][0]["to_status"] == "pending"


def test_template_parameters_are_checked_against_the_schema(alice, node, train):
    response = submit(alice, template="train", params={"lr": -1, "run": "a", "extra": 1})
    assert response.status_code == 422
    messages = " ".join(response.json()["params"])
    assert "lr" in messages and "extra" in messages


def test_an_unknown_template_is_a_422(alice, node):
    response = submit(alice, template="nope", params={})
    assert response.status_code == 422
    assert "template" in response.json()


def test_a_raw_argv_needs_the_permission(alice, node):
    response = submit(alice, argv=["python", "-c", "print(1)"])
    assert response.status_code == 403
    assert "raw" in response.json()["detail"]


def test_a_user_granted_the_permission_may_send_a_raw_argv(alice, node):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    assert submit(alice, argv=["python", "-c", "print(1)"]).status_code == 201


def test_admins_may_send_a_raw_argv(root, node):
    response = submit(root, argv=["sleep", "1"], gpu_count=2)
    assert response.status_code == 201
    assert response.json()["priority"] == 30


def test_viewers_cannot_submit(viewer, node, train):
    assert submit(viewer, template="train", params={"lr": 1, "run": "a"}).status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "template"),
        ({"argv": []}, "argv"),
        ({"argv": "sleep 1"}, "argv"),
        ({"argv": ["sleep", "1"], "gpu_count": 0}, "gpu_count"),
        ({"argv": ["sleep", "1"], "gpu_count": "two"}, "gpu_count"),
        ({"argv": ["sleep", "1"], "time_limit_seconds": 0}, "time_limit_seconds"),
        ({"argv": ["sleep", "1"], "template": "train"}, "template"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(root, node, train, body, field):
    response = submit(root, **body)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize("env", [{"GPUQ_JOB_ID": "7"}, {"bad name": "x"}])
def test_a_bad_environment_name_is_a_422_naming_env(root, node, env):
    # Rules on an object's keys: OpenAPI 3.0 cannot state them (queueproject.refusals.Unprocessable).
    response = submit(root, argv=["sleep", "1"], env=env)
    assert response.status_code == 422 and "env" in response.json()


def test_more_gpus_than_any_node_has_is_a_422_that_says_so(root, node):
    response = submit(root, argv=["sleep", "1"], gpu_count=3)
    assert response.status_code == 422
    assert "no node has 3 GPUs; the most on one node is 2" in response.json()["gpu_count"][0]


def test_a_priority_above_the_users_ceiling_is_refused(alice, node, train):
    response = submit(alice, template="train", params={"lr": 1, "run": "a"}, priority=20)
    assert response.status_code == 403
    assert "at most 10" in response.json()["priority"][0]


def test_users_see_only_their_own_jobs_and_admins_see_all(alice, bob, root):
    mine, theirs = make_job(alice), make_job(bob)
    assert [j["id"] for j in api_for(alice).get("/api/v1/jobs").json()["results"]] == [mine.pk]
    assert api_for(alice).get(f"/api/v1/jobs/{theirs.pk}").status_code == 404
    assert {j["id"] for j in api_for(root).get("/api/v1/jobs").json()["results"]} == {mine.pk, theirs.pk}


def test_jobs_filter_by_status_and_owner(alice, bob, root):
    make_job(alice, status=Status.COMPLETED)
    running = make_job(alice, status=Status.RUNNING)
    make_job(bob, status=Status.RUNNING)
    rows = api_for(root).get("/api/v1/jobs?status=running,dispatched&owner=alice").json()["results"]
    assert [j["id"] for j in rows] == [running.pk]
    response = api_for(root).get("/api/v1/jobs?status=runnin")
    assert response.status_code == 400 and "runnin" in response.json()["status"][0]


def test_job_detail_lists_its_transitions(alice, node):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    job_id = submit(alice, argv=["true"]).json()["id"]
    tick()
    body = api_for(alice).get(f"/api/v1/jobs/{job_id}").json()
    assert [(t["from_status"], t["to_status"]) for t in body["transitions"]] == [
        ("", "pending"),
        ("pending", "dispatched"),
    ]
    assert body["transitions"][0]["by"] == "alice"
    assert body["node"] == "testnode" and body["gpu_indices"] == [0]


def test_cancel_a_pending_job(alice):
    job = make_job(alice)
    response = api_for(alice).post(f"/api/v1/jobs/{job.pk}/cancel", {"reason": "wrong data"}, format="json")
    assert response.status_code == 200
    assert response.json()["status"] == "cancelled"
    assert Job.objects.get(pk=job.pk).transitions.last().reason == "wrong data"


def test_cancel_a_running_job_asks_it_to_stop(alice):
    job = make_job(alice, status=Status.RUNNING)
    response = api_for(alice).post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 202
    assert response.json()["cancel_requested"] is True
    assert (Job.objects.get(pk=job.pk).stop_request, Job.objects.get(pk=job.pk).stop_requested_by) == (
        "cancel",
        alice,
    )


def test_nobody_cancels_someone_elses_job_but_an_admin(alice, bob, root):
    job = make_job(bob)
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 404
    assert api_for(root).post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 200


def test_cancelling_a_finished_job_is_a_409(alice):
    job = make_job(alice, status=Status.COMPLETED)
    response = api_for(alice).post(f"/api/v1/jobs/{job.pk}/cancel")
    assert response.status_code == 409
    assert "already ended" in response.json()["status"][0]


def test_the_log_tail(alice, tmp_path):
    path = tmp_path / "job.log"
    job = make_job(alice)
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text("".join(f"line {i}\n" for i in range(500)))
    shipper.flush()
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?lines=3").json()
    assert body == {"job": job.pk, "lines": ["line 497", "line 498", "line 499"], "truncated": True}
    assert api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?lines=0").status_code == 400


def test_following_the_log_by_offset_returns_each_byte_once_and_whole_characters(alice, bob, tmp_path):
    path = tmp_path / "job.log"
    job = make_job(alice, status=Status.RUNNING)
    api = api_for(alice)
    shipper = LogShipper(path, [job.pk], attempt=1)

    def follow(offset):
        shipper.flush()  # what the node's executor does after each heartbeat
        return api.get(f"/api/v1/jobs/{job.pk}/log?offset={offset}").json()

    assert follow(0) == {
        "job": job.pk,
        "offset": 0,
        "text": "",
        "next_offset": 0,
        "size": 0,
        "finished": False,
    }
    path.write_bytes("épo".encode())  # 4 bytes
    first = follow(0)
    assert (first["text"], first["next_offset"]) == ("épo", 4)
    path.write_bytes("époque ".encode() + "→".encode()[:2])  # a character cut in two at the end
    second = follow(first["next_offset"])
    assert (second["text"], second["next_offset"], second["size"]) == ("que ", 8, 10)
    with open(path, "ab") as handle:
        handle.write("→".encode()[2:] + b" done\n")
    third = follow(second["next_offset"])
    assert third["text"] == "→ done\n" and third["next_offset"] == third["size"]
    assert first["text"] + second["text"] + third["text"] == path.read_text()
    assert api.get(f"/api/v1/jobs/{job.pk}/log?offset=-1").status_code == 400
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}/log?offset=0").status_code == 404


def test_the_queue_lists_running_and_pending_jobs_with_position_and_reason(alice, bob, node):
    first, second, third = (make_job(owner, argv=["sleep", "30"]) for owner in (alice, bob, alice))
    tick()
    body = api_for(bob).get("/api/v1/queue").json()
    assert [j["id"] for j in body["running"]] == [first.pk, second.pk]
    assert [(j["id"], j["position"], j["wait_reason"]) for j in body["pending"]] == [
        (third.pk, 1, "resources")
    ]
    assert "argv" not in body["pending"][0]  # others' commands stay private


def test_the_openapi_schema_and_docs_are_served_to_users(alice):
    client = api_for(alice)
    schema = client.get("/api/v1/schema/")
    assert schema.status_code == 200
    assert b"/api/v1/jobs" in schema.content
    assert client.get("/api/v1/docs/").status_code == 200


def test_the_schema_is_not_public(db):
    from rest_framework.test import APIClient

    assert APIClient().get("/api/v1/schema/").status_code in (401, 403)


def test_a_submission_answers_the_job_as_its_detail_reads_it_without_reading_it_back(
    alice, node, train, django_assert_max_num_queries
):
    """The answer renders what the submit wrote (no read back of the job, its transitions, attempts or
    audit): it must be exactly what GET /jobs/{id} says, dependencies, transition and position included."""
    client = api_for(alice)
    first = client.post("/api/v1/jobs", {"template": "train", "params": {"lr": 1, "run": "a"}}).json()
    body = {"template": "train", "params": {"lr": 2, "run": "b"}, "depends_on": [first["id"]], "name": "b"}
    with django_assert_max_num_queries(14):
        response = client.post("/api/v1/jobs", body)
    assert response.status_code == 201, response.json()
    answer = response.json()
    assert answer.pop("queue_position") == 2
    assert answer["depends_on"] == [first["id"]] and answer["transitions"][0]["by"] == "alice"
    assert answer == client.get(f"/api/v1/jobs/{answer['id']}").json()
