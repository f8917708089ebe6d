"""The job, GPUs, my-jobs, submit and analytics pages, server side (the browser tests drive them live)."""

import shutil

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from scheduling.models import GpuQuota, Job, JobTemplate
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import make_user
from tests.factories import make_job


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def hello(db):
    return JobTemplate.objects.create(
        name="hello",
        argv_template=["echo", "{message}", "--times={times}"],
        params_schema={
            "type": "object",
            "properties": {
                "message": {"type": "string", "description": "what to say"},
                "times": {"type": "integer", "minimum": 1},
                "loud": {"type": "boolean"},
                "voice": {"enum": ["low", "high"]},
            },
            "required": ["message", "times"],
        },
    )


@pytest.mark.parametrize("path", ["/jobs/1/", "/gpus/", "/me/", "/submit/", "/analytics/"])
def test_every_page_needs_a_login(db, path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_the_job_page_shows_placement_timeline_and_attempts_to_those_who_may_see_it(alice, bob, root, node):
    job = make_job(alice, name="train", argv=["sleep", "1"], time_limit_seconds=60)
    job.transitions.create(from_status="", to_status=Status.PENDING)
    tick()
    page = client_for(alice).get(f"/jobs/{job.pk}/").content.decode()
    assert "testnode" in page and "Time limit" in page and "60 s" in page
    assert "→ <strong>dispatched</strong>" in page  # the timeline
    assert 'data-action="cancel"' in page and 'data-action="pause"' in page
    assert client_for(bob).get(f"/jobs/{job.pk}/").status_code == 404  # not bob's
    assert client_for(root).get(f"/jobs/{job.pk}/").status_code == 200
    fragment = client_for(alice).get(f"/jobs/{job.pk}/?fragment=1").content.decode()
    assert "<html" not in fragment and "Attempts" in fragment


def test_leads_see_and_act_on_their_teams_jobs(alice, team, node):
    from accounts.models import Level

    lead = make_user("lena", level=Level.LEAD, team=team)
    job = make_job(alice, team=team)
    assert client_for(lead).get(f"/jobs/{job.pk}/").status_code == 200
    client_for(lead).post(f"/jobs/{job.pk}/pause", {"next": "/"})
    job.refresh_from_db()
    assert job.status == Status.PAUSED
    assert job.transitions.last().triggered_by == lead


def test_page_buttons_pause_resume_and_cancel_through_the_services(alice, bob, node):
    job = make_job(alice)
    client = client_for(alice)
    response = client.post(f"/jobs/{job.pk}/pause", {"next": f"/jobs/{job.pk}/"})
    assert response.status_code == 302 and response["Location"] == f"/jobs/{job.pk}/"
    job.refresh_from_db()
    assert job.status == Status.PAUSED
    client.post(f"/jobs/{job.pk}/resume", {"next": "https://evil.example/"})
    job.refresh_from_db()
    assert job.status == Status.PENDING
    assert client_for(bob).post(f"/jobs/{job.pk}/cancel").status_code == 404
    client.post(f"/jobs/{job.pk}/cancel")
    job.refresh_from_db()
    assert job.status == Status.CANCELLED
    again = client.post(f"/jobs/{job.pk}/cancel", {"next": "/me/"}, follow=True).content.decode()
    assert "already ended" in again  # the service's reason, shown as a message
    assert client.get(f"/jobs/{job.pk}/cancel").status_code == 405
    assert client.post(f"/jobs/{job.pk}/explode").status_code == 404


def test_the_gpus_page_shows_each_gpu_and_the_job_holding_it(alice, node):
    job = make_job(alice, name="holder")
    tick()
    page = client_for(alice).get("/gpus/").content.decode()
    assert "testnode" in page and "simulated" in page
    assert f"#{job.pk} holder" in page and "free" in page


def test_my_jobs_shows_my_jobs_and_quota_with_a_warning_past_80_percent(alice, bob, node, quota_day_at_noon):
    mine, theirs = make_job(alice, name="mine"), make_job(bob, name="theirs")
    GpuQuota.objects.create(user=alice, daily_gpu_seconds=100)
    page = client_for(alice).get("/me/").content.decode()
    assert f"#{mine.pk} mine" in page and f"#{theirs.pk}" not in page
    assert "of 0.0" in page and "over 80%" not in page
    from datetime import timedelta

    from django.utils import timezone

    from gpus.models import Allocation, Gpu

    Allocation.objects.create(
        gpu=Gpu.objects.first(),
        job=mine,
        attempt=1,
        allocated_at=timezone.now() - timedelta(seconds=90),
        released_at=timezone.now(),
    )
    page = client_for(alice).get("/me/").content.decode()
    assert "over 80%" in page


def test_submitting_a_template_from_the_page_checks_its_schema(alice, node, hello):
    client = client_for(alice)
    form = client.get("/submit/?template=hello").content.decode()
    assert 'name="param_message"' in form and 'type="number"' in form and 'type="checkbox"' in form
    assert "what to say" in form and "<option>high</option>" in form
    assert "Urgent" not in form and "Normal (10)" in form  # a researcher's ceiling is Normal
    bad = client.post("/submit/", {"template": "hello", "param_message": "hi", "param_times": "0"})
    assert bad.status_code == 400 and "times" in bad.content.decode()
    assert not Job.objects.exists()
    ok = client.post(
        "/submit/",
        {
            "template": "hello",
            "param_message": "hi; rm -rf /",
            "param_times": "2",
            "param_loud": "on",
            "gpu_count": "1",
            "priority": "0",
        },
    )
    job = Job.objects.get()
    assert ok.status_code == 302 and ok["Location"] == f"/jobs/{job.pk}/"
    assert job.argv == [shutil.which("echo"), "hi; rm -rf /", "--times=2"] and job.params["loud"] is True
    assert job.priority == 0


def test_raw_commands_from_the_page_need_the_permission(alice, node):
    client = client_for(alice)
    assert "textarea" not in client.get("/submit/").content.decode()
    refused = client.post("/submit/", {"argv": "sleep\n1"})
    assert refused.status_code == 400 and "raw commands" in refused.content.decode()
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    client = client_for(alice)
    assert client.post("/submit/", {"argv": "sleep\n1\n", "priority": "10"}).status_code == 302
    assert Job.objects.get().argv == ["sleep", "1"]


def test_viewers_cannot_open_the_submit_page(viewer):
    assert client_for(viewer).get("/submit/").status_code == 403


def test_the_analytics_page_draws_its_charts_from_real_data(alice, node):
    job = make_job(alice, argv=["true"])
    tick()
    from scheduling.transitions import transition

    job.refresh_from_db()
    transition(job, Status.RUNNING, token=job.lease_token)
    transition(job, Status.FAILED, token=job.lease_token, reason="exit code 1")
    page = client_for(alice).get("/analytics/").content.decode()
    for title in (
        "Queue depth",
        "GPU utilization",
        "Jobs finished per hour",
        "Wait before start",
        "Failure rate",
        "GPU-hours per user",
        "GPU-hours per team",
    ):
        assert title in page
    assert "1 failed of 1 finished" in page and 'data-value="100.0"' in page


def test_admins_see_the_raw_command_form_without_a_template(root, node, hello):
    page = client_for(root).get("/submit/").content.decode()
    assert "<textarea" in page and "Urgent (30)" in page and 'value="1"' in page
