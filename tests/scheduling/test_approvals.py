"""The approvals inbox (/approvals/ and GET /api/v1/approvals): leads see their team's blocked jobs (never
their own), admins all, each with its cost and the rule that blocked it; approve and reject from the page
go through the services; the page's queries do not grow with the number of jobs."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from accounts.models import Level, Team
from scheduling import policies, services
from scheduling.models import JobTemplate, PolicyType
from scheduling.states import Status
from tests.conftest import api_for, make_user
from tests.factories import make_job


@pytest.fixture
def lead(db, team):
    return make_user("lena", level=Level.LEAD, team=team)


@pytest.fixture
def nlp(db):
    return Team.objects.create(name="nlp")


@pytest.fixture
def costly(db):
    """An approval rule: above a cost of 10 (1.5 per GPU-hour) a job waits for approval."""
    policies.set_policy(
        PolicyType.APPROVAL, enabled=True, config={"max_cost": 10, "price_per_gpu_hour": {"*": 1.5}}
    )
    return JobTemplate.objects.create(name="train", argv_template=["/bin/echo", "hi"], params_schema={})


def blocked(owner, team=None, **fields):
    return make_job(
        owner,
        team=team,
        status=Status.BLOCKED,
        wait_reason="approval",
        wait_detail="needs approval",
        **fields,
    )


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def rows(response) -> list[int]:
    """The job ids the inbox page lists, in order."""
    import re

    return [int(i) for i in re.findall(r'<tr data-job="(\d+)"', response.content.decode())]


def test_a_lead_sees_his_teams_blocked_jobs_not_his_own_nor_another_teams(alice, lead, team, nlp):
    olga = make_user("olga", team=nlp)
    theirs = blocked(alice, team)
    blocked(lead, team)  # his own: another lead or an admin decides
    blocked(olga, nlp)
    make_job(alice, team=team)  # not blocked
    assert rows(logged_in(lead).get("/approvals/")) == [theirs.pk]
    body = api_for(lead).get("/api/v1/approvals").json()
    assert body["count"] == 1 and [j["id"] for j in body["results"]] == [theirs.pk]


def test_an_admin_sees_every_blocked_job_oldest_first(alice, root, team, nlp):
    olga = make_user("olga", team=nlp)
    first, second, third = blocked(alice, team), blocked(olga, nlp), blocked(root)
    assert rows(logged_in(root).get("/approvals/")) == [first.pk, second.pk, third.pk]


def test_researchers_and_viewers_are_refused_the_inbox(alice, viewer):
    for user in (alice, viewer):
        assert logged_in(user).get("/approvals/").status_code == 403
        response = api_for(user).get("/api/v1/approvals")
        assert response.status_code == 403
        assert "leads and admins" in response.json()["detail"]


def test_only_leads_and_admins_have_the_link_in_the_header(alice, lead, root):
    for user, linked in ((alice, False), (lead, True), (root, True)):
        page = logged_in(user).get("/gpus/").content.decode()
        assert ('href="/approvals/"' in page) is linked, user


def test_the_inbox_shows_the_cost_and_the_rule_that_blocked_the_job(alice, lead, node, costly):
    job = services.job_submit(
        user=alice, template=costly, params={}, gpu_count=2, time_limit_seconds=4 * 3600
    )
    assert job.status == Status.BLOCKED
    page = logged_in(lead).get("/approvals/").content.decode()
    assert "2 GPU × 4.0 h" in page and "<strong>12.00</strong>" in page and "1.5 per GPU-hour" in page
    assert "estimated cost 12.00 (2 GPU × 4.0 h × 1.5) exceeds 10" in page
    [entry] = api_for(lead).get("/api/v1/approvals").json()["results"]
    assert entry == {
        "id": job.pk,
        "name": "train",
        "owner": "alice",
        "team": "vision",
        "gpu_count": 2,
        "gpu_model": "",
        "time_limit_seconds": 14400,
        "priority": 10,
        "submitted_at": job.submitted_at.isoformat(),
        "start_after": None,
        "rule": "estimated cost 12.00 (2 GPU × 4.0 h × 1.5) exceeds 10",
        "cost": {"estimate": 12.0, "gpus": 2, "hours": 4.0, "price_per_gpu_hour": 1.5, "max_cost": 10},
        "approve_url": f"/api/v1/jobs/{job.pk}/approve",
        "reject_url": f"/api/v1/jobs/{job.pk}/reject",
    }


def test_approving_from_the_page_sends_the_job_to_the_queue(alice, lead, team):
    job = blocked(alice, team)
    client = logged_in(lead)
    response = client.post("/approvals/", {"job": job.pk, "action": "approve", "page": "1"})
    assert response.status_code == 302 and response["Location"] == "/approvals/?page=1"
    job.refresh_from_db()
    assert job.status == Status.PENDING
    last = job.transitions.last()
    assert (last.to_status, last.triggered_by) == (Status.PENDING, lead)
    page = client.get(response["Location"])
    assert f"Job {job.pk} approved." in page.content.decode() and rows(page) == []


def test_rejecting_from_the_page_needs_a_reason(alice, lead, team):
    job = blocked(alice, team)
    client = logged_in(lead)
    page = client.post("/approvals/", {"job": job.pk, "action": "reject", "reason": "  "}, follow=True)
    assert "reason: say why the job is rejected" in page.content.decode()
    job.refresh_from_db()
    assert job.status == Status.BLOCKED
    page = client.post("/approvals/", {"job": job.pk, "action": "reject", "reason": "too big"}, follow=True)
    assert f"Job {job.pk} rejected." in page.content.decode()
    job.refresh_from_db()
    assert job.status == Status.REJECTED and job.transitions.last().reason == "too big"


def test_deciding_from_the_page_is_refused_to_others(alice, lead, team, nlp):
    nick = make_user("nick", level=Level.LEAD, team=nlp)
    own = blocked(lead, team)
    theirs = blocked(alice, team)
    # His own job: he sees it, the service refuses, the page says why.
    page = logged_in(lead).post("/approvals/", {"job": own.pk, "action": "approve"}, follow=True)
    assert "You cannot approve or reject your own job" in page.content.decode()
    # Another team's lead: the job is not his to see (404, as in the API); a researcher: not his page.
    assert logged_in(nick).post("/approvals/", {"job": theirs.pk, "action": "approve"}).status_code == 404
    assert logged_in(alice).post("/approvals/", {"job": theirs.pk, "action": "approve"}).status_code == 403
    # An action that is neither.
    page = logged_in(lead).post("/approvals/", {"job": theirs.pk, "action": "delete"}, follow=True)
    assert "action: &#x27;delete&#x27; is not approve or reject" in page.content.decode()
    for job in (own, theirs):
        job.refresh_from_db()
        assert job.status == Status.BLOCKED


def test_the_inbox_is_paged_and_its_queries_do_not_grow_with_the_jobs(alice, lead, team, node, costly):
    def queries(client, url) -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url).status_code == 200
        return len(captured)

    client, api = logged_in(lead), api_for(lead)
    api.get("/api/v1/approvals")  # the token's first use is recorded once
    jobs = [blocked(alice, team) for _ in range(3)]
    few = (queries(client, "/approvals/"), queries(api, "/api/v1/approvals"))
    jobs += [blocked(alice, team) for _ in range(27)]
    assert (queries(client, "/approvals/"), queries(api, "/api/v1/approvals")) == few
    assert rows(client.get("/approvals/")) == [j.pk for j in jobs[:25]]
    assert rows(client.get("/approvals/?page=2")) == [j.pk for j in jobs[25:]]
    body = api.get("/api/v1/approvals?limit=10&offset=20").json()
    assert body["count"] == 30 and [j["id"] for j in body["results"]] == [j.pk for j in jobs[20:30]]
