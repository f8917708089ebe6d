"""Object permissions (django-guardian): owners act on their jobs, leads on their team's, admins on all;
a job can be shared with another user to view or to act; viewers only read. The same rule on the API,
the pages and the admin, because all of them ask accounts.permissions and selectors.visible_jobs."""

from django.test import Client

from accounts.models import Level
from scheduling.models import JobUserObjectPermission
from scheduling.states import Status
from tests.conftest import api_for, make_user
from tests.factories import make_job


def share(owner, job, username, **body):
    return api_for(owner).post(f"/api/v1/jobs/{job.pk}/share", {"user": username, **body}, format="json")


def test_a_job_shared_to_view_is_visible_but_not_actionable(alice, bob):
    job = make_job(alice)
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}").status_code == 404
    response = share(alice, job, "bob", permission="view")
    assert response.status_code == 200 and response.json()["permissions"] == ["view_job"]
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}").status_code == 200
    assert job.pk in [j["id"] for j in api_for(bob).get("/api/v1/jobs").json()["results"]]
    assert api_for(bob).post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 403
    job.refresh_from_db()
    assert job.status == Status.PENDING


def test_a_job_shared_to_act_can_be_paused_by_that_user_on_the_api_and_the_pages(alice, bob):
    job = make_job(alice)
    share(alice, job, "bob", permission="act")
    assert api_for(bob).post(f"/api/v1/jobs/{job.pk}/pause").status_code == 200
    job.refresh_from_db()
    assert job.status == Status.PAUSED and job.transitions.last().triggered_by == bob
    client = Client()
    client.force_login(bob)
    assert 'data-action="resume"' in client.get(f"/jobs/{job.pk}/").content.decode()
    client.post(f"/jobs/{job.pk}/resume")
    job.refresh_from_db()
    assert job.status == Status.PENDING


def test_revoking_takes_the_rights_back(alice, bob):
    job = make_job(alice)
    share(alice, job, "bob", permission="act")
    assert share(alice, job, "bob", permission="act", revoke=True).json()["permissions"] == ["view_job"]
    assert api_for(bob).post(f"/api/v1/jobs/{job.pk}/pause").status_code == 403
    share(alice, job, "bob", permission="view", revoke=True)
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}").status_code == 404
    assert not JobUserObjectPermission.objects.exists()
    assert [a.detail for a in job.audit.order_by("id")] == [
        "granted act for bob",
        "revoked act for bob",
        "revoked view for bob",
    ]


def test_only_the_owner_or_an_admin_shares(alice, bob, root):
    job = make_job(alice)
    share(alice, job, "bob", permission="act")
    assert share(bob, job, "root").status_code == 403  # bob may act, not pass the job on
    assert share(root, job, "bob", permission="view", revoke=True).status_code == 200
    assert share(alice, job, "nobody").status_code == 422  # well formed, but no such user
    assert share(alice, job, "alice").status_code == 422
    assert share(alice, job, "bob", permission="own").status_code == 400


def test_viewers_read_but_never_act_even_when_shared(alice, viewer):
    job = make_job(alice)
    share(alice, job, "victor", permission="act")
    assert api_for(viewer).get(f"/api/v1/jobs/{job.pk}").status_code == 200
    assert api_for(viewer).post(f"/api/v1/jobs/{job.pk}/cancel").status_code == 403
    assert api_for(viewer).get("/api/v1/queue").status_code == 200


def test_leads_act_on_their_teams_jobs_only(alice, bob, team):
    lead = make_user("lena", level=Level.LEAD, team=team)
    teammate_job, other_job = make_job(alice, team=team), make_job(bob)
    assert api_for(lead).post(f"/api/v1/jobs/{teammate_job.pk}/pause").status_code == 200
    assert api_for(lead).post(f"/api/v1/jobs/{other_job.pk}/pause").status_code == 404
