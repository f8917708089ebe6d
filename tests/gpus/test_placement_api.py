"""Placement through the API: constraints are validated, stored, honoured by the real tick; dry_run and
no_wait answer from the real planner."""

import pytest
from django.contrib.auth.models import Permission

from gpus.inventory import parse_declared
from gpus.services import node_register
from scheduling.models import Job
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for


@pytest.fixture
def cluster(db):
    """The server's own node with two 24 GB L4s, and a worker with four 80 GB A100s labelled."""
    node_register(
        name="server",
        backend="declared",
        gpus=parse_declared("2x24GB:NVIDIA L4", node_name="server"),
        labels={"zone": "eu-west"},
        boot_id="",
        local=True,
    )
    node_register(
        name="big",
        backend="declared",
        gpus=parse_declared("4x80GB:NVIDIA A100-SXM4-80GB", node_name="big"),
        labels={"zone": "us-east", "gpu_type": "a100-80g"},
        boot_id="",
    )


def submit(user, **body):
    return api_for(user).post("/api/v1/jobs", {"argv": ["true"], **body}, format="json")


def placed(response) -> tuple[str, list[int]]:
    assert response.status_code == 201, response.json()
    tick()
    job = Job.objects.select_related("node").get(pk=response.json()["id"])
    assert job.status == Status.DISPATCHED, (job.wait_reason, job.wait_detail)
    return job.node.name, job.gpu_indices


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, ("server", [0])),  # best fit: the tighter node, keeping the four A100s whole
        ({"target": "local"}, ("server", [0])),
        ({"gpu_model": "*L4"}, ("server", [0])),
        ({"min_gpu_memory_mb": 40000}, ("big", [0])),
        ({"node_labels": {"zone": "eu-*"}}, ("server", [0])),
        ({"node_labels": {"gpu_type": "a100*", "zone": "us-*"}, "gpu_count": 3}, ("big", [0, 1, 2])),
        ({"device_ids": [1], "target": "local"}, ("server", [1])),
        ({"device_ids": [3, 2], "gpu_count": 2}, ("big", [2, 3])),
    ],
)
def test_jobs_go_where_their_constraints_say(root, cluster, body, where):
    assert placed(submit(root, **body)) == where


def test_constraints_are_stored_and_shown(root, cluster):
    body = submit(root, gpu_model="A100*", min_gpu_memory_mb=1000, node_labels={"zone": "*"}).json()
    assert (body["gpu_model"], body["min_gpu_memory_mb"], body["node_labels"], body["target"]) == (
        "A100*",
        1000,
        {"zone": "*"},
        "auto",
    )


def test_a_constrained_job_waits_until_a_fitting_gpu_is_free(root, cluster):
    first = placed(submit(root, gpu_count=2, target="local"))
    assert first == ("server", [0, 1])
    response = submit(root, gpu_model="*L4")
    tick()
    job = Job.objects.get(pk=response.json()["id"])
    assert job.status == Status.PENDING and job.wait_reason == "resources"
    assert "model *L4" in job.wait_detail  # the A100s are free, but not what it asked for


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"gpu_count": 5}, "gpu_count", "no node has 5 GPUs; the most on one node is 4"),
        (
            {"gpu_count": 3, "gpu_model": "*L4"},
            "gpu_model",
            "no node has 3 GPUs with model *L4; the most on one node is 2",
        ),
        (
            {"min_gpu_memory_mb": 100000},
            "min_gpu_memory_mb",
            "with ≥ 100000 MB each; the most on one node is 0",
        ),
        ({"node_labels": {"zone": "ap-*"}}, "node_labels", "with labels zone=ap-*"),
        # Each alone fits somewhere; only the two together rule out every node.
        ({"target": "worker", "gpu_model": "*L4"}, "gpu_count", "with model *L4; target worker"),
        ({"device_ids": [7]}, "device_ids", "with devices 7"),
    ],
)
def test_a_job_that_could_never_fit_is_a_422_under_the_field_that_rules_it_out(
    root, cluster, body, field, message
):
    response = submit(root, **body)
    assert response.status_code == 422  # well formed, but no node could ever run it
    assert list(response.json()) == [field]
    assert message in response.json()[field][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"target": "elsewhere"}, "target"),
        ({"min_gpu_memory_mb": 0}, "min_gpu_memory_mb"),
        ({"device_ids": [0, 0], "gpu_count": 2}, "device_ids"),
        ({"device_ids": [-1]}, "device_ids"),
        ({"node_labels": ["zone"]}, "node_labels"),
        ({"node_labels": {"zone": {"nested": 1}}}, "node_labels"),
    ],
)
def test_bad_constraints_are_a_400_naming_the_field(root, cluster, body, field):
    response = submit(root, **body)
    assert response.status_code == 400
    assert field in response.json(), response.json()


def test_device_ids_not_as_many_as_gpu_count_is_a_422(root, cluster):
    response = submit(root, device_ids=[0, 1])  # one GPU asked, two named: no schema can say it
    assert response.status_code == 422 and "device_ids" in response.json()


def test_dry_run_says_where_the_job_would_go_and_creates_nothing(root, cluster):
    response = submit(root, dry_run=True, gpu_model="*L4", gpu_count=2)
    assert response.status_code == 200
    assert response.json() == {
        "dry_run": True,
        "would_start": True,
        "status": "pending",
        "node": "server",
        "gpus": [0, 1],
        "reason": "",
        "detail": "",
        "position": 1,
    }
    assert not Job.objects.exists()


def test_dry_run_says_why_the_job_would_wait(root, alice, cluster):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    placed(submit(root, gpu_count=4))
    placed(submit(root, gpu_count=2))
    verdict = submit(alice, dry_run=True).json()
    assert verdict["would_start"] is False and verdict["reason"] == "resources"
    assert verdict["detail"] == "needs 1 GPU(s) on one node; most free on a node: 0"
    assert verdict["position"] == 1
    assert not Job.objects.filter(owner=alice).exists()


def test_no_wait_refuses_a_job_that_would_wait_and_accepts_one_that_starts(root, cluster):
    placed(submit(root, gpu_count=4))
    refused = submit(root, no_wait=True, min_gpu_memory_mb=80000)
    assert refused.status_code == 409
    assert "no_wait: the job would not start now (resources" in refused.json()["detail"]
    assert Job.objects.count() == 1
    assert placed(submit(root, no_wait=True, target="local")) == ("server", [0])


def test_dry_run_of_a_job_that_needs_approval_says_so(root, alice, cluster):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    api_for(root).post(
        "/api/v1/policies",
        {"type": "approval", "config": {"max_gpus": 2}},
        format="json",
    )
    verdict = submit(alice, dry_run=True, gpu_count=3).json()
    assert verdict["would_start"] is False and verdict["status"] == "blocked"
