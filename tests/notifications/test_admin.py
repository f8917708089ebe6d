"""The admin: the delivery log for gpuq admins only, failed deliveries sent again, team webhooks made there."""

import pytest

from accounts.models import Level
from notifications.models import Delivery, DeliveryStatus, Webhook
from tests.conftest import make_user

pytestmark = pytest.mark.django_db


def failed_delivery(n: int = 1) -> Delivery:
    return Delivery.objects.create(
        key=f"{n}:u1:email",
        event_seq=n,
        kind="failed",
        channel="email",
        target="a@example.org",
        status=DeliveryStatus.FAILED,
        attempts=8,
        last_error="Connection refused",
    )


def test_the_delivery_log_is_for_admins_and_sends_failed_ones_again(client, root, team):
    delivery = failed_delivery()
    lead = make_user("lena", level=Level.LEAD, team=team, is_staff=True)
    client.force_login(lead)
    assert client.get("/admin/notifications/delivery/").status_code == 403
    client.force_login(root)
    page = client.get("/admin/notifications/delivery/")
    assert page.status_code == 200 and "Connection refused" in page.content.decode()
    client.post("/admin/notifications/delivery/", {"action": "send_again", "_selected_action": [delivery.pk]})
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.PENDING, 0)


def test_an_admin_makes_a_team_hook_and_sees_its_secret_once(client, root, team):
    client.force_login(root)
    form = {
        "team": team.pk,
        "name": "slack",
        "url": "https://hooks.example.org/t",
        "format": "slack",
        "kinds": '["failed"]',
        "enabled": "on",
    }
    response = client.post("/admin/notifications/webhook/add/", form, follow=True)
    hook = Webhook.objects.get()
    assert hook.secret in response.content.decode() and hook.kinds == ["failed"]
    bad = client.post(
        "/admin/notifications/webhook/add/", {**form, "url": "ftp://x.org/", "kinds": '["nope"]'}
    )
    assert (
        bad.status_code == 200
        and "http:// or https://" in bad.content.decode()
        and "unknown kind" in bad.content.decode()
    )
    no_team = client.post("/admin/notifications/webhook/add/", {**form, "team": ""})
    assert "Admins make team webhooks here" in no_team.content.decode()
    assert Webhook.objects.count() == 1
