"""Notifications through the real pipeline: a `gpuq_node` process fans a failed job's event out and starts
its notification cluster, whose django-q2 task delivers the signed webhook (a first refusal is retried)."""

import pytest

from notifications.models import Delivery, DeliveryStatus, Webhook
from tests.conftest import JOB_PYTHON, api_for, wait_for
from tests.notifications.receivers import WebhookReceiver

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_a_nodes_notification_cluster_delivers_a_failed_jobs_webhook(root, start_node):
    with WebhookReceiver(fail=1) as receiver:
        receiver.secret = Webhook.objects.create(owner=root, url=receiver.url).secret
        start_node(GPUQ_NOTIFY_BACKOFF_SECONDS=0)
        code = "import sys; print('loss is nan'); sys.exit(3)"
        client = api_for(root)  # raw commands: admins
        job_id = client.post("/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", code]}).json()["id"]
        delivered = wait_for(
            lambda: Delivery.objects.filter(job_id=job_id, status=DeliveryStatus.DELIVERED).first(),
            timeout=60,
            message="the webhook delivered by the node's notification cluster",
        )
    assert (delivered.kind, delivered.attempts) == ("failed", 2)
    assert len(receiver.requests) == 2 and all(signed for _, _, signed in receiver.requests)
    assert "loss is nan" in receiver.requests[-1][1]["log"]
