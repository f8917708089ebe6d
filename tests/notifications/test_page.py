"""The notifications page: per-kind checkboxes and the webhook, its secret shown once."""

import pytest

from notifications.models import Preference, Webhook

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, alice):
    client.force_login(alice)
    return client


def test_it_shows_every_kind_with_its_channels(page):
    body = page.get("/notifications/").content.decode()
    assert 'name="email_failed" aria-label="e-mail: Job failed" checked' in body
    assert 'name="email_started" aria-label="e-mail: Job started">' in body


def test_saving_sets_the_channels_and_the_webhook_whose_secret_shows_once(page, alice):
    form = {
        "email_started": "on",
        "webhook_failed": "on",
        "url": "https://hooks.example.org/a",
        "format": "discord",
        "enabled": "on",
    }
    body = page.post("/notifications/", form).content.decode()
    hook = Webhook.objects.get(owner=alice)
    assert hook.secret in body and hook.format == "discord" and hook.enabled
    prefs = {p.kind: (p.email, p.webhook) for p in Preference.objects.filter(user=alice)}
    assert prefs["started"] == (True, False) and prefs["failed"] == (False, True)
    assert prefs["approved"] == (False, False)  # unticked: off
    again = page.post("/notifications/", {**form, "url": "https://hooks.example.org/b"}).content.decode()
    assert hook.secret not in again and hook.secret_hint in again
    page.post("/notifications/", {**form, "remove": "on"})
    assert not Webhook.objects.filter(owner=alice).exists()


def test_a_bad_url_is_refused_and_nothing_is_saved(page, alice):
    response = page.post("/notifications/", {"email_started": "on", "url": "ftp://example.org/x"})
    assert response.status_code == 400 and "url:" in response.content.decode()
    assert not Preference.objects.filter(user=alice).exists() and not Webhook.objects.exists()
