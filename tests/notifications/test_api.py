"""The notifications API: a user's own settings and webhook, strict input, and admins' team webhooks."""

import pytest

from notifications.models import Delivery, Preference, Webhook
from tests.conftest import api_for

pytestmark = pytest.mark.django_db


def test_it_shows_every_kind_with_the_defaults(alice):
    body = api_for(alice).get("/api/v1/me/notifications").json()
    kinds = {row["kind"]: row for row in body["kinds"]}
    assert len(kinds) == 13 and body["webhook"] is None
    assert kinds["failed"]["email"] is True and kinds["started"]["email"] is False


def test_it_changes_only_the_channels_named(alice):
    client = api_for(alice)
    response = client.patch(
        "/api/v1/me/notifications", {"kinds": {"started": {"email": True}, "failed": {"webhook": False}}}
    )
    assert response.status_code == 200
    kinds = {row["kind"]: row for row in response.json()["kinds"]}
    assert (kinds["started"]["email"], kinds["started"]["webhook"]) == (True, False)
    assert (kinds["failed"]["email"], kinds["failed"]["webhook"]) == (True, False)
    assert Preference.objects.filter(user=alice).count() == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"kinds": {"exploded": {"email": True}}}, "kinds"),
        ({"kinds": {"failed": {"email": "yes"}}}, "kinds"),
        ({"kinds": {"failed": {"sms": True}}}, "kinds"),
        ({"kinds": []}, "kinds"),
        ({"colour": "red", "kinds": {}}, "colour"),
    ],
)
def test_bad_settings_are_a_400_naming_the_field(alice, body, field):
    response = api_for(alice).patch("/api/v1/me/notifications", body)
    assert response.status_code == 400 and field in response.json(), response.json()


def test_the_webhook_secret_is_shown_once_and_rotated_on_request(alice):
    client = api_for(alice)
    made = client.put(
        "/api/v1/me/notifications/webhook", {"url": "https://hooks.example.org/x", "format": "slack"}
    )
    assert made.status_code == 200
    secret = made.json()["secret"]
    assert secret.startswith("whsec_") and Webhook.objects.get(owner=alice).secret == secret
    again = client.put(
        "/api/v1/me/notifications/webhook", {"url": "https://hooks.example.org/y", "format": "teams"}
    )
    assert again.json()["secret"] is None and again.json()["format"] == "teams"
    assert secret not in str(client.get("/api/v1/me/notifications").json())
    rotated = client.put(
        "/api/v1/me/notifications/webhook", {"url": "https://hooks.example.org/y", "rotate_secret": True}
    )
    assert rotated.json()["secret"] not in (None, secret)
    assert client.delete("/api/v1/me/notifications/webhook").status_code == 204
    assert client.delete("/api/v1/me/notifications/webhook").status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "ftp://example.org/x"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": "https://example.org/x", "format": "fax"}, "format"),
        ({"url": "https://example.org/x", "enabled": 1}, "enabled"),
    ],
)
def test_a_bad_webhook_is_a_400_naming_the_field(alice, body, field):
    response = api_for(alice).put("/api/v1/me/notifications/webhook", body)
    assert response.status_code == 400 and field in response.json(), response.json()


def test_team_hooks_are_for_admins(alice, root, team, django_assert_max_num_queries):
    body = {"team": "vision", "url": "https://hooks.example.org/t", "kinds": ["failed", "node_offline"]}
    assert api_for(alice).post("/api/v1/notifications/team-hooks", body).status_code == 403
    assert api_for(alice).get("/api/v1/notifications/team-hooks").status_code == 403
    admin = api_for(root)
    made = admin.post("/api/v1/notifications/team-hooks", body)
    assert made.status_code == 201 and made.json()["secret"].startswith("whsec_")
    for i in range(3):
        admin.post("/api/v1/notifications/team-hooks", {**body, "name": f"h{i}"})
    with django_assert_max_num_queries(8):
        listed = admin.get("/api/v1/notifications/team-hooks?limit=2").json()
    assert listed["count"] == 4 and len(listed["results"]) == 2
    assert "secret" not in listed["results"][0] and listed["results"][0]["team"] == "vision"
    bad = admin.post("/api/v1/notifications/team-hooks", {**body, "kinds": ["exploded"]})
    assert bad.status_code == 400 and "kinds" in bad.json()
    assert (
        admin.post("/api/v1/notifications/team-hooks", {**body, "team": "nope"}).status_code == 422
    )  # no such team
    hook_id = made.json()["id"]
    assert api_for(alice).delete(f"/api/v1/notifications/team-hooks/{hook_id}").status_code == 403
    assert admin.delete(f"/api/v1/notifications/team-hooks/{hook_id}").status_code == 204
    assert admin.delete(f"/api/v1/notifications/team-hooks/{hook_id}").status_code == 404


def test_users_see_their_own_deliveries_only(alice, bob, django_assert_max_num_queries):
    for n, user in enumerate([alice, alice, alice, bob]):
        Delivery.objects.create(
            key=f"{n}:u{user.pk}:webhook",
            event_seq=n,
            kind="failed",
            user=user,
            channel="webhook",
            target="https://hooks.example.org/x",
            attempts=2,
            last_error="HTTP 500",
        )
    with django_assert_max_num_queries(6):
        body = api_for(alice).get("/api/v1/me/notifications/deliveries?limit=2").json()
    assert body["count"] == 3 and [d["key"] for d in body["results"]] == [
        f"2:u{alice.pk}:webhook",
        f"1:u{alice.pk}:webhook",
    ]
    assert body["results"][0]["last_error"] == "HTTP 500"
    assert api_for(bob).get("/api/v1/me/notifications/deliveries").json()["count"] == 1
