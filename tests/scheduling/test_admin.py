"""The admin: jobs with filters, search and their read-only transitions; cancel through the service."""

import pytest
from django.test import Client

from scheduling.models import Job
from scheduling.states import Status
from scheduling.tick import tick
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


def test_the_waiting_queue_moves_a_job_and_takes_the_neighbours_priority(admin_client, alice, root):
    low, high_a, high_b = (
        make_job(alice, priority=0),
        make_job(alice, priority=20),
        make_job(alice, priority=20),
    )
    tick()
    page = admin_client.get("/admin/scheduling/job/queue/").content.decode()
    assert page.index(f'data-job="{high_a.pk}"') < page.index(f'data-job="{low.pk}"')
    assert "Waiting queue" in admin_client.get("/admin/scheduling/job/").content.decode()  # linked
    moved = admin_client.post("/admin/scheduling/job/queue/move/", {"job": low.pk, "before": high_a.pk})
    assert moved.status_code == 200 and moved.json()["order"] == [low.pk, high_a.pk, high_b.pk]
    low.refresh_from_db()
    assert low.priority == 20
    assert [a.action for a in low.audit.order_by("id")] == ["priority", "move"]
    assert all(a.by == root for a in low.audit.all())


@pytest.mark.parametrize("body", [{}, {"job": "x", "before": "1"}, {"job": "999", "before": "1"}])
def test_a_bad_move_is_a_400(admin_client, alice, body):
    make_job(alice)
    response = admin_client.post("/admin/scheduling/job/queue/move/", body)
    assert response.status_code == 400 and "detail" in response.json()


def test_only_admins_move_jobs_and_staff_without_admin_level_are_refused(alice, bob):
    staff = bob
    staff.is_staff = True
    staff.save()
    a, b = make_job(alice), make_job(alice)
    client = Client()
    client.force_login(staff)
    response = client.post("/admin/scheduling/job/queue/move/", {"job": b.pk, "before": a.pk})
    assert response.status_code == 403
    assert (
        Client().post("/admin/scheduling/job/queue/move/", {"job": b.pk, "before": a.pk}).status_code == 302
    )


def test_reject_with_a_reason_and_set_priority_from_the_admin(admin_client, alice, root):
    blocked = make_job(alice, status=Status.BLOCKED, wait_reason="approval")
    waiting = make_job(alice, priority=10)
    form = admin_client.post(
        "/admin/scheduling/job/", {"action": "reject_jobs", "_selected_action": [blocked.pk]}
    )
    assert form.status_code == 200 and 'name="value"' in form.content.decode()  # asks for the reason
    admin_client.post(
        "/admin/scheduling/job/",
        {"action": "reject_jobs", "_selected_action": [blocked.pk], "value": "too big for now", "apply": "1"},
    )
    blocked.refresh_from_db()
    assert blocked.status == Status.REJECTED
    assert (
        blocked.transitions.last().reason == "too big for now"
        and blocked.transitions.last().triggered_by == root
    )
    admin_client.post(
        "/admin/scheduling/job/",
        {"action": "set_priority", "_selected_action": [waiting.pk], "value": "25", "apply": "1"},
    )
    waiting.refresh_from_db()
    assert waiting.priority == 25


def test_quotas_are_edited_inline_on_users_and_teams(admin_client, alice, team):
    from scheduling.models import GpuQuota

    page = admin_client.get(f"/admin/auth/user/{alice.pk}/change/").content.decode()
    assert "Gpu quota" in page and "daily_gpu_seconds" in page
    page = admin_client.get(f"/admin/accounts/team/{team.pk}/change/").content.decode()
    assert "daily_gpu_seconds" in page
    response = admin_client.post(
        f"/admin/accounts/team/{team.pk}/change/",
        {
            "name": team.name,
            "gpu_quota-TOTAL_FORMS": "1",
            "gpu_quota-INITIAL_FORMS": "0",
            "gpu_quota-MIN_NUM_FORMS": "0",
            "gpu_quota-MAX_NUM_FORMS": "1",
            "gpu_quota-0-daily_gpu_seconds": "3600",
            "gpu_quota-0-weekly_gpu_seconds": "",
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert GpuQuota.objects.get(team=team).daily_gpu_seconds == 3600


def test_an_active_job_cannot_be_deleted_in_the_admin(admin_client, alice):
    job = make_job(alice, status=Status.RUNNING)
    assert admin_client.get(f"/admin/scheduling/job/{job.pk}/delete/").status_code == 403
    assert admin_client.post(f"/admin/scheduling/job/{job.pk}/delete/", {"post": "yes"}).status_code == 403
    response = admin_client.post(
        "/admin/scheduling/job/",
        {"action": "delete_selected", "_selected_action": [job.pk], "post": "yes"},
        follow=True,
    )
    assert response.status_code == 403  # Django refuses the whole selection
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING  # untouched: cancel it first


def test_deleting_a_finished_job_in_the_admin_archives_it(admin_client, alice, settings):
    from scheduling import archive

    job = make_job(alice)
    transition(job, Status.CANCELLED, by=alice, reason="typo in config")
    response = admin_client.post(f"/admin/scheduling/job/{job.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Job.objects.filter(pk=job.pk).exists()
    (path,) = settings.GPUQ_ARCHIVE_DIR.iterdir()
    assert [line["reason"] for line in archive.read(path)] == ["typo in config"]
