"""The admin: jobs with filters, search and their read-only transitions; cancel through the service."""

import pytest
from django.test import Client

from scheduling.models import Job
from scheduling.states import Status
from scheduling.transitions import transition
from tests.factories import make_job


@pytest.fixture
def admin_client(root):
    client = Client()
    client.force_login(root)
    return client


def test_the_job_list_filters_and_searches(admin_client, alice, bob):
    make_job(alice, name="resnet-sweep")
    make_job(bob, name="llama-finetune", status=Status.RUNNING)
    page = admin_client.get("/admin/scheduling/job/?q=llama").content.decode()
    assert "llama-finetune" in page and "resnet-sweep" not in page
    page = admin_client.get("/admin/scheduling/job/?status__exact=pending").content.decode()
    assert "resnet-sweep" in page and "llama-finetune" not in page


def test_a_job_shows_its_transitions_read_only(admin_client, alice):
    job = make_job(alice, name="bert")
    transition(job, Status.CANCELLED, by=alice, reason="typo in config")
    page = admin_client.get(f"/admin/scheduling/job/{job.pk}/change/").content.decode()
    assert "typo in config" in page
    assert 'name="transitions-0-reason"' not in page  # shown, not editable
    assert 'name="status"' not in page  # the status changes only through the services


def test_the_cancel_action_goes_through_the_service(admin_client, alice):
    job = make_job(alice)
    response = admin_client.post(
        "/admin/scheduling/job/", {"action": "cancel_jobs", "_selected_action": [job.pk]}, follow=True
    )
    assert "1 job(s) cancelled" in response.content.decode()
    job = Job.objects.get(pk=job.pk)
    assert job.status == Status.CANCELLED
    assert job.transitions.last().triggered_by.username == "root"


def test_nodes_and_gpus_are_listed(admin_client, node):
    assert "testnode" in admin_client.get("/admin/gpus/node/").content.decode()
    page = admin_client.get("/admin/gpus/gpu/").content.decode()
    assert "Simulated GPU" in page


def test_non_staff_cannot_open_the_admin(alice):
    client = Client()
    client.force_login(alice)
    assert client.get("/admin/scheduling/job/").status_code == 302


def test_a_policy_with_a_bad_config_is_refused_in_the_admin(admin_client):
    response = admin_client.post(
        "/admin/scheduling/schedulingpolicy/add/",
        {"type": "off_peak", "config": '{"start": "7pm"}', "enabled": "on"},
    )
    assert response.status_code == 200  # the form again, with the error
    assert "does not match" in response.content.decode()
    from scheduling.models import SchedulingPolicy

    assert not SchedulingPolicy.objects.exists()
    ok = admin_client.post(
        "/admin/scheduling/schedulingpolicy/add/",
        {"type": "off_peak", "config": '{"start": "21:00"}', "enabled": "on"},
    )
    assert ok.status_code == 302
    assert SchedulingPolicy.objects.get().config == {"start": "21:00", "end": "08:00", "timezone": "UTC"}


def test_admins_set_quotas_and_approve_jobs_in_the_admin(admin_client, alice):
    response = admin_client.post(
        "/admin/scheduling/gpuquota/add/", {"user": alice.pk, "daily_gpu_seconds": "7200"}
    )
    assert response.status_code == 302
    assert alice.gpu_quota.daily_gpu_seconds == 7200
    job = make_job(alice, status=Status.BLOCKED)
    page = admin_client.post(
        "/admin/scheduling/job/", {"action": "approve_jobs", "_selected_action": [job.pk]}, follow=True
    )
    assert "1 job(s) approved" in page.content.decode(), page.content.decode()[-3000:]
    assert Job.objects.get(pk=job.pk).status == Status.PENDING
