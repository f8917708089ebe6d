"""Nodes: silent ones go offline (their jobs wait for their own lease), drain and undrain, system status."""

from datetime import timedelta

from django.utils import timezone

from gpus.models import Node, NodeStatus
from gpus.services import node_heartbeat, nodes_mark_offline
from scheduling.models import Job
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for
from tests.factories import make_job


def test_a_silent_node_goes_offline_and_leaves_the_pool(alice, node, settings):
    settings.GPUQ_NODE_TIMEOUT_SECONDS = 15
    Node.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now() - timedelta(seconds=16))
    assert nodes_mark_offline() == ["testnode"]
    job = make_job(alice)
    tick()
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    node_heartbeat(node=node)  # it is back
    assert Node.objects.get(pk=node.pk).status == NodeStatus.ONLINE
    tick()
    assert Job.objects.get(pk=job.pk).status == Status.DISPATCHED


def test_a_node_that_heartbeats_stays_online(node, settings):
    settings.GPUQ_NODE_TIMEOUT_SECONDS = 15
    node_heartbeat(node=node)
    assert nodes_mark_offline() == []


def test_jobs_on_a_silent_node_keep_running_until_their_own_lease_expires(alice, node, settings):
    job = make_job(alice)
    tick()
    Node.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now() - timedelta(minutes=5))
    nodes_mark_offline()
    assert Job.objects.get(pk=job.pk).status == Status.DISPATCHED  # its executor may still be alive


def test_drain_stops_new_jobs_and_undrain_resumes(alice, root, node):
    assert api_for(alice).post("/api/v1/nodes/testnode/drain").status_code == 403
    response = api_for(root).post("/api/v1/nodes/testnode/drain")
    assert response.status_code == 200 and response.json()["drained"] is True
    job = make_job(alice)
    tick()
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
    assert api_for(root).post("/api/v1/nodes/testnode/undrain").json()["drained"] is False
    tick()
    assert Job.objects.get(pk=job.pk).status == Status.DISPATCHED
    assert api_for(root).post("/api/v1/nodes/nope/drain").status_code == 404


def test_include_allocation_is_true_or_false(alice, node):
    client = api_for(alice)
    assert "gpu_allocation" not in client.get("/api/v1/system/status?include_allocation=false").json()
    refused = client.get("/api/v1/system/status?include_allocation=maybe")  # was a silent false
    assert refused.status_code == 400 and "include_allocation" in refused.json()


def test_system_status_shows_which_job_holds_each_gpu(alice, node):
    job = make_job(alice)
    tick()
    body = api_for(alice).get("/api/v1/system/status?include_allocation=true").json()
    assert body["gpu_count"] == 2
    allocation = body["gpu_allocation"]
    assert allocation["allocated_gpus"] == ["testnode:0"] and allocation["available_gpus"] == ["testnode:1"]
    assert allocation["running_jobs"] == 1
    device = allocation["devices"][0]
    assert (device["job_id"], device["owner"], device["simulated"], device["memory_gb"]) == (
        job.pk,
        "alice",
        True,
        24.0,
    )
    plain = api_for(alice).get("/api/v1/system/status").json()
    assert "gpu_allocation" not in plain and plain["nodes"][0]["gpus"][1]["name"] == "Simulated GPU"
    assert api_for(alice).get("/api/v1/nodes").json()["nodes"][0]["name"] == "testnode"
