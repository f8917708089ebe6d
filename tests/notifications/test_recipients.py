"""Who hears what: the kind of each event, and the recipients and channels of each kind (fan-out only, no
sending; events are built as the stream carries them)."""

import pytest
from django.utils import timezone

from accounts.models import Level, Team
from notifications.fanout import deliveries_for
from notifications.kinds import classify
from notifications.models import Format, Kind, Preference, Webhook
from scheduling.events import job_fields
from scheduling.states import Status
from tests.conftest import make_user
from tests.factories import make_job

pytestmark = pytest.mark.django_db


def job_event(job, came: str, to: str | None = None, *, seq: int = 1, reason: str = "why", notice=None):
    data = {**job_fields(job), "from": came, "reason": reason}
    if to is not None:
        data["status"] = to
    if notice is not None:
        data["notice"] = notice
    return {"id": seq, "at": timezone.now().isoformat(), "kind": "job", "job": job.pk, "data": data}


def node_event(status: str, seq: int = 1):
    return {
        "id": seq,
        "at": timezone.now().isoformat(),
        "kind": "node",
        "job": None,
        "data": {"name": "n1", "status": status},
    }


def to(deliveries) -> set[tuple[str, str]]:
    return {(d.user.username if d.user else f"hook:{d.webhook.name}", d.channel) for d in deliveries}


@pytest.mark.parametrize(
    ("came", "went", "notice", "kind"),
    [
        ("dispatched", "running", None, Kind.STARTED),
        ("paused", "running", None, None),
        ("running", "completed", None, Kind.COMPLETED),
        ("running", "failed", None, Kind.FAILED),
        ("pending", "failed", None, Kind.FAILED),
        ("running", "pending", None, Kind.REQUEUED),
        ("dispatched", "pending", None, Kind.REQUEUED),
        ("paused", "pending", None, None),
        ("", "pending", None, None),
        ("", "blocked", None, Kind.APPROVAL_NEEDED),
        ("pending", "blocked", None, Kind.APPROVAL_NEEDED),
        ("blocked", "pending", None, Kind.APPROVED),
        ("blocked", "scheduled", None, Kind.APPROVED),
        ("blocked", "rejected", None, Kind.REJECTED),
        ("blocked", "cancelled", None, None),
        ("running", "cancelled", None, None),
        ("pending", "dispatched", None, None),
        ("running", "running", "idle_warning", Kind.IDLE_WARNING),
        ("running", "running", "idle_report", Kind.IDLE_WARNING),
        ("running", "running", "stalled", Kind.STALLED),
        ("pending", "pending", "waiting_long", Kind.WAITING_LONG),
        ("pending", "pending", "quota_80", Kind.QUOTA_80),
        ("pending", "pending", "quota_100", Kind.QUOTA_100),
        ("pending", "pending", "something_new", None),
    ],
)
def test_it_classifies_each_event(alice, came, went, notice, kind):
    job = make_job(alice)
    assert classify(job_event(job, came, went, notice=notice)) == kind


def test_node_events_are_node_offline_only_when_going_offline():
    assert classify(node_event("offline")) == Kind.NODE_OFFLINE
    assert classify(node_event("online")) is None
    assert classify({"id": 1, "at": "", "kind": "queue", "job": None, "data": {"changed": 3}}) is None


@pytest.fixture
def people(team, alice, bob, root):
    for user in (alice, bob, root):
        user.email = f"{user.username}@example.org"
        user.save()
    lena = make_user("lena", level=Level.LEAD, team=team, email="lena@example.org")
    nick = make_user("nick", level=Level.LEAD, team=Team.objects.create(name="nlp"), email="nick@example.org")
    return {"lena": lena, "nick": nick}


def test_a_jobs_own_news_goes_to_its_owner_only(people, alice):
    job = make_job(alice, team=alice.profile.team)
    for came, went in [("dispatched", "running"), ("running", "failed"), ("blocked", "rejected")]:
        wanted = {("alice", "email")} if went != "running" else set()  # started is not a default kind
        assert to(deliveries_for([job_event(job, came, went)])) == wanted


def test_approval_needed_goes_to_the_teams_leads_and_the_admins_never_the_owner(people, alice, team):
    job = make_job(alice, status=Status.BLOCKED, team=team)
    assert to(deliveries_for([job_event(job, "", "blocked")])) == {("lena", "email"), ("root", "email")}
    # A lead's own job waits for another lead of the team or an admin.
    own = make_job(people["lena"], status=Status.BLOCKED, team=team)
    assert to(deliveries_for([job_event(own, "", "blocked")])) == {("root", "email")}


def test_node_offline_goes_to_the_admins(people):
    assert to(deliveries_for([node_event("offline")])) == {("root", "email")}


def test_preferences_choose_the_channels(people, alice):
    hook = Webhook.objects.create(owner=alice, url="http://127.0.0.1:9/x", name="mine")
    Preference.objects.create(user=alice, kind=Kind.FAILED, email=False, webhook=True)
    Preference.objects.create(user=alice, kind=Kind.STARTED, email=True, webhook=True)
    job = make_job(alice)
    assert to(deliveries_for([job_event(job, "running", "failed")])) == {("alice", "webhook")}
    started = deliveries_for([job_event(job, "dispatched", "running", seq=2)])
    assert to(started) == {("alice", "email"), ("alice", "webhook")}
    assert {d.key for d in started} == {f"2:u{alice.pk}:email", f"2:u{alice.pk}:webhook"}
    assert {d.target for d in started} == {"alice@example.org", hook.url}
    # No address, no e-mail; a disabled webhook, no webhook.
    alice.email = ""
    alice.save()
    Webhook.objects.filter(pk=hook.pk).update(enabled=False)
    assert deliveries_for([job_event(job, "dispatched", "running", seq=3)]) == []


def test_a_team_hook_hears_its_teams_jobs_with_the_public_fields_only(people, alice, bob, team):
    hook = Webhook.objects.create(
        team=team,
        name="vision-slack",
        url="http://127.0.0.1:9/t",
        format=Format.SLACK,
        kinds=["failed", "node_offline"],
    )
    ours = make_job(alice, team=team, name="ours")
    made = deliveries_for([job_event(ours, "running", "failed", reason="secret stack trace")])
    team_delivery = next(d for d in made if d.webhook_id == hook.pk)
    assert team_delivery.user is None and "reason" not in team_delivery.payload["job"]
    assert "secret stack trace" not in team_delivery.payload["text"]
    owner_delivery = next(d for d in made if d.user == alice)
    assert "secret stack trace" in owner_delivery.payload["text"]  # the owner may read it all

    theirs = make_job(bob, name="theirs")  # no team
    assert to(deliveries_for([job_event(theirs, "running", "failed", seq=2)])) == {("bob", "email")}
    assert ("hook:vision-slack", "webhook") in to(deliveries_for([node_event("offline", seq=3)]))
    assert to(deliveries_for([job_event(ours, "running", "completed", seq=4)])) == set()  # not its kind


def test_fan_out_queries_do_not_grow_with_the_events(people, alice, team, django_assert_max_num_queries):
    jobs = [make_job(alice, team=team) for _ in range(30)]
    events = [job_event(job, "pending", "blocked", seq=i) for i, job in enumerate(jobs, 1)]
    events += [job_event(job, "dispatched", "running", seq=100 + i) for i, job in enumerate(jobs)]
    Webhook.objects.create(team=team, url="http://127.0.0.1:9/t", kinds=["started"])
    with django_assert_max_num_queries(12):
        made = deliveries_for(events)
    assert len(made) == 30 * 2 + 30  # lena and root for each approval; the team hook for each start
