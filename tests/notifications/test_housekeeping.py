"""The delivery log is pruned by the daily retention run and counted by /metrics."""

from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from notifications.models import Delivery, DeliveryStatus
from scheduling import housekeeping
from scheduling.metrics import scrape

pytestmark = pytest.mark.django_db


def delivery(n: int, *, age_days: float, status=DeliveryStatus.DELIVERED, channel="email") -> Delivery:
    return Delivery.objects.create(
        key=f"{n}:u1:{channel}",
        event_seq=n,
        kind="failed",
        channel=channel,
        target="a@example.org",
        status=status,
        created_at=timezone.now() - timedelta(days=age_days),
    )


def test_the_retention_run_removes_deliveries_older_than_the_setting(settings):
    settings.GPUQ_NOTIFY_DELIVERY_DAYS = 30
    old, fresh = delivery(1, age_days=31), delivery(2, age_days=29, status=DeliveryStatus.PENDING)
    report = housekeeping.retention_run()
    assert report["notification_deliveries"] == 1
    assert list(Delivery.objects.values_list("pk", flat=True)) == [fresh.pk]
    assert not Delivery.objects.filter(pk=old.pk).exists()


def test_metrics_count_failures_and_deliveries_by_channel():
    delivery(1, age_days=0, status=DeliveryStatus.FAILED, channel="webhook")
    delivery(2, age_days=0, status=DeliveryStatus.FAILED, channel="webhook")
    delivery(3, age_days=0)
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape().decode())
        for s in family.samples
    }
    assert samples[("gpuq_notification_failures", (("channel", "webhook"),))] == 2
    assert samples[("gpuq_notification_failures", (("channel", "email"),))] == 0
    assert samples[("gpuq_notification_deliveries", (("channel", "email"), ("status", "delivered")))] == 1
