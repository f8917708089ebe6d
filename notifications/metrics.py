"""The notification figures of /metrics (scheduling.metrics), read from the delivery log in one query."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily, Metric

from notifications.models import Channel, Delivery, DeliveryStatus


def collect() -> Iterator[Metric]:
    counts = {
        (channel, status): n
        for channel, status, n in Delivery.objects.order_by()
        .values_list("channel", "status")
        .annotate(n=Count("id"))
    }
    deliveries = GaugeMetricFamily(
        "gpuq_notification_deliveries",
        "Notification deliveries in the delivery log (kept GPUQ_NOTIFY_DELIVERY_DAYS) by channel and status.",
        labels=["channel", "status"],
    )
    failures = GaugeMetricFamily(
        "gpuq_notification_failures",
        "Notifications given up after their last attempt, by channel (in the delivery log).",
        labels=["channel"],
    )
    for channel in Channel.values:
        for status in DeliveryStatus.values:
            deliveries.add_metric([channel, status], counts.get((channel, status), 0))
        failures.add_metric([channel], counts.get((channel, DeliveryStatus.FAILED), 0))
    yield deliveries
    yield failures
