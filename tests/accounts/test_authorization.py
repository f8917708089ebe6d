"""What issue 9 saw of the authorization model, each now refused: leads reprioritising beyond their
ceiling, acting on other teams' jobs or approving their own; the admin deciding by Django model
permissions; shares and leads seeing env; job ids leaking through errors; a query per listed job."""

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Level, Team
from scheduling.models import JobUserObjectPermission, PolicyType, SchedulingPolicy
from scheduling.states import Status
from tests.conftest import api_for, make_user
from tests.factories import make_job

SECRET = {"API_KEY": "s3cret"}


@pytest.fixture
def lead(db, team):
    return make_user("lena", level=Level.LEAD, team=team, is_staff=True)


@pytest.fixture
def other_lead(db):
    return make_user("nick", level=Level.LEAD, team=Team.objects.create(name="nlp"), is_staff=True)


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_a_lead_sets_priorities_only_between_background_and_their_ceiling(alice, lead, team, root):
    job = make_job(alice, team=team, priority=10)
    for priority in (1000, -1000, 21, -11):
        response = api_for(lead).post(
            f"/api/v1/jobs/{job.pk}/priority", {"priority": priority}, format="json"
        )
        assert response.status_code == 403 and "priority" in response.json(), priority
    job.refresh_from_db()
    assert job.priority == 10 and not job.audit.exists()
    assert api_for(lead).post(f"/api/v1/jobs/{job.pk}/priority", {"priority": 20}).status_code == 200
    assert api_for(lead).post(f"/api/v1/jobs/{job.pk}/priority", {"priority": -10}).status_code == 200
    assert api_for(root).post(f"/api/v1/jobs/{job.pk}/priority", {"priority": 1000}).status_code == 200
    job.refresh_from_db()
    assert job.priority == 1000


def test_a_lead_of_another_team_meets_the_404_of_a_missing_job_and_changes_nothing(alice, team, other_lead):
    job = make_job(alice, team=team, status=Status.BLOCKED, env=SECRET, argv=["/bin/train", "--key=k"])
    missing = job.pk + 1000
    for action, body in (("approve", {}), ("reject", {"reason": "no"}), ("priority", {"priority": 1000})):
        hidden = api_for(other_lead).post(f"/api/v1/jobs/{job.pk}/{action}", body, format="json")
        absent = api_for(other_lead).post(f"/api/v1/jobs/{missing}/{action}", body, format="json")
        assert hidden.status_code == absent.status_code == 404
        assert hidden.json() == absent.json() and "s3cret" not in hidden.content.decode()
    job.refresh_from_db()
    assert job.status == Status.BLOCKED and job.priority == 10


def test_leads_never_approve_their_own_jobs_but_admins_may(lead, team, root):
    own = make_job(lead, team=team, status=Status.BLOCKED)
    response = api_for(lead).post(f"/api/v1/jobs/{own.pk}/approve")
    assert response.status_code == 403 and "own job" in response.json()["detail"]
    assert api_for(lead).post(f"/api/v1/jobs/{own.pk}/reject", {"reason": "x"}).status_code == 403
    own.refresh_from_db()
    assert own.status == Status.BLOCKED
    mine = make_job(root, status=Status.BLOCKED)
    assert api_for(root).post(f"/api/v1/jobs/{mine.pk}/approve").status_code == 200


def test_a_lead_approves_a_teammates_job_and_the_reply_has_no_env(alice, team, lead):
    job = make_job(alice, team=team, status=Status.BLOCKED, env=SECRET)
    response = api_for(lead).post(f"/api/v1/jobs/{job.pk}/approve")
    assert response.status_code == 200 and response.json()["status"] == Status.PENDING
    assert "env" not in response.json() and "s3cret" not in response.content.decode()


def test_a_view_share_shows_the_argv_but_never_the_env(alice, bob):
    job = make_job(alice, env=SECRET, argv=["/bin/train", "--epochs=3"])
    api_for(alice).post(f"/api/v1/jobs/{job.pk}/share", {"user": "bob", "permission": "view"}, format="json")
    detail = api_for(bob).get(f"/api/v1/jobs/{job.pk}")
    assert detail.status_code == 200 and detail.json()["argv"] == ["/bin/train", "--epochs=3"]
    assert "env" not in detail.json() and "s3cret" not in detail.content.decode()
    listed = api_for(bob).get("/api/v1/jobs").json()["results"]
    assert [j["id"] for j in listed] == [job.pk] and "env" not in listed[0]
    assert api_for(alice).get(f"/api/v1/jobs/{job.pk}").json()["env"] == SECRET


def test_depends_on_another_users_job_is_the_same_422_as_a_missing_id(alice, bob, node):
    theirs = make_job(bob)
    missing = theirs.pk + 1000
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    client = api_for(alice)
    hidden = client.post("/api/v1/jobs", {"argv": ["true"], "depends_on": [theirs.pk]}, format="json")
    absent = client.post("/api/v1/jobs", {"argv": ["true"], "depends_on": [missing]}, format="json")
    assert hidden.status_code == absent.status_code == 422
    assert hidden.json() == {"depends_on": [f"no job {theirs.pk}"]}
    assert absent.json() == {"depends_on": [f"no job {missing}"]}


def test_a_staff_researcher_with_every_model_permission_cannot_change_policies_in_the_admin(bob):
    bob.is_staff = True
    bob.save()
    bob.user_permissions.add(*Permission.objects.filter(content_type__model="schedulingpolicy"))
    policy = SchedulingPolicy.objects.create(type=PolicyType.OFF_PEAK, config={"start": "22:00"})
    client = logged_in(bob)
    assert client.get("/admin/scheduling/schedulingpolicy/add/").status_code == 403
    change = f"/admin/scheduling/schedulingpolicy/{policy.pk}/change/"
    assert client.get(change).status_code == 403
    assert client.post(change, {"type": "off_peak", "config": '{"start": "01:00"}'}).status_code == 403
    policy.refresh_from_db()
    assert policy.config["start"] == "22:00"
    assert api_for(bob).patch(f"/api/v1/policies/{policy.pk}", {"enabled": False}).status_code == 403


def test_a_staff_member_at_level_admin_changes_policies_without_django_permissions(db):
    boss = make_user("boss", level=Level.ADMIN, is_staff=True)
    policy = SchedulingPolicy.objects.create(type=PolicyType.OFF_PEAK, config={"start": "22:00"})
    response = logged_in(boss).post(
        f"/admin/scheduling/schedulingpolicy/{policy.pk}/change/",
        {"type": "off_peak", "config": '{"start": "01:00"}', "enabled": "on"},
    )
    assert response.status_code == 302
    policy.refresh_from_db()
    assert policy.config["start"] == "01:00"


def test_a_staff_lead_sees_their_teams_jobs_in_the_admin_without_env(alice, bob, team, lead):
    teammate_job = make_job(alice, team=team, name="team-run", env=SECRET)
    other_job = make_job(bob, name="other-run", env=SECRET)
    client = logged_in(lead)
    listing = client.get("/admin/scheduling/job/").content.decode()
    assert "team-run" in listing and "other-run" not in listing
    page = client.get(f"/admin/scheduling/job/{teammate_job.pk}/change/")
    assert page.status_code == 200 and "s3cret" not in page.content.decode()
    assert "field-argv" in page.content.decode() and "field-env" not in page.content.decode()
    assert client.get(f"/admin/scheduling/job/{other_job.pk}/change/").status_code == 302  # as if missing
    alice.is_staff = True
    alice.save()
    assert (
        "s3cret" in logged_in(alice).get(f"/admin/scheduling/job/{teammate_job.pk}/change/").content.decode()
    )


def test_admin_actions_of_a_staff_lead_follow_the_same_rules(alice, bob, team, lead):
    theirs = make_job(alice, team=team, status=Status.BLOCKED)
    own = make_job(lead, team=team, status=Status.BLOCKED)
    other = make_job(bob, status=Status.BLOCKED)
    logged_in(lead).post(
        "/admin/scheduling/job/",
        {"action": "approve_jobs", "_selected_action": [theirs.pk, own.pk, other.pk]},
    )
    for job, status in ((theirs, Status.PENDING), (own, Status.BLOCKED), (other, Status.BLOCKED)):
        job.refresh_from_db()
        assert job.status == status, job


def test_a_staff_lead_cannot_move_jobs_in_the_admin_queue_nor_change_their_priority(alice, team, lead):
    low, high = make_job(alice, team=team, priority=0), make_job(alice, team=team, priority=20)
    response = logged_in(lead).post("/admin/scheduling/job/queue/move/", {"job": low.pk, "before": high.pk})
    assert response.status_code == 403
    low.refresh_from_db()
    assert low.priority == 0 and not low.audit.exists()


def _queries(client, url) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(url).status_code == 200
    return len(queries)


@pytest.mark.parametrize("url", ["/api/v1/jobs", "/", "/me/"])
def test_listing_jobs_checks_permissions_without_a_query_per_job(alice, bob, team, lead, url):
    """Issue 11: a permission check and a profile query per row. The level and team are read once."""

    def add_jobs(n):
        for _ in range(n):
            make_job(lead, team=team)
            shared = make_job(bob)
            JobUserObjectPermission.objects.create(
                user=lead, content_object=shared, permission=Permission.objects.get(codename="act_on_job")
            )
            make_job(alice, team=team)

    client = Client()
    client.force_login(lead)
    add_jobs(2)
    few = _queries(client, url)
    add_jobs(8)
    assert _queries(client, url) == few


def test_a_users_level_is_read_once_per_user_object_until_forgotten(alice):
    from accounts.permissions import forget, level_of

    assert level_of(alice) == Level.RESEARCHER
    alice.profile.level = Level.LEAD
    alice.profile.save()
    with CaptureQueriesContext(connection) as queries:
        assert level_of(alice) == Level.RESEARCHER  # kept: no query per check
    assert len(queries) == 0
    forget(alice)
    assert level_of(alice) == Level.LEAD


def test_the_raw_command_permission_counts_through_a_group_and_is_read_once(alice):
    from django.contrib.auth.models import Group

    from accounts.permissions import can_submit_raw, forget

    assert not can_submit_raw(alice)
    raw = Permission.objects.get(content_type__app_label="scheduling", codename="submit_raw_command")
    group = Group.objects.create(name="raw")
    group.permissions.add(raw)
    alice.groups.add(group)
    assert not can_submit_raw(alice)  # kept on the user object, like the level
    forget(alice)
    with CaptureQueriesContext(connection) as queries:
        assert can_submit_raw(alice)
    assert len([q for q in queries if "auth_permission" in q["sql"]]) == 1
    with CaptureQueriesContext(connection) as queries:
        assert can_submit_raw(alice)
    assert len(queries) == 0
    alice.groups.clear()
    alice.user_permissions.add(raw)
    forget(alice)
    assert can_submit_raw(alice)
    alice.user_permissions.clear()
    forget(alice)
    assert not can_submit_raw(alice)
