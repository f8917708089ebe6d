"""Sending due deliveries, each claimed by compare-and-set, with retries and exponential backoff, and the
django-q2 task that does it. A delivery is sent outside any transaction: a receiver that hangs holds no
lock and delays nothing but this task (and at most GPUQ_NOTIFY_TIMEOUT_SECONDS per connection).

`kick()` is what the node loop calls each period: notices (notifications.notices, once a minute) and
fan-out (database only), then, when something is due
and no sending task is queued, it queues one on GPUQ_NOTIFY_QUEUE (the node then starts the small
cluster that consumes that queue). A task lost with its worker is queued again after KICK_STALE."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from notifications import notices
from notifications.channels import SendError, http_client, send
from notifications.fanout import cursor, fan_out
from notifications.models import Cursor, Delivery, DeliveryStatus

log = logging.getLogger("gpuq.notifications")

TASK = "notifications.sending.send_task"
BATCH = 100  # deliveries claimed at a time
KICK_STALE = timedelta(minutes=2)  # a queued task not started by then is queued again
KICK_BATCHES = 4  # event batches a kick fans out (the sending task fans out the rest)
NOTICE_PERIOD = timedelta(minutes=1)  # how often one of the nodes looks for notices to raise


def backoff(attempts: int) -> float:
    """Seconds before try `attempts + 1`: GPUQ_NOTIFY_BACKOFF_SECONDS, doubling, capped."""
    delay = settings.GPUQ_NOTIFY_BACKOFF_SECONDS * 2 ** max(0, attempts - 1)
    return min(delay, settings.GPUQ_NOTIFY_BACKOFF_MAX_SECONDS)


def claim_lease() -> timedelta:
    """How long a claimed delivery stays another worker's: longer than any send can take."""
    return timedelta(seconds=3 * settings.GPUQ_NOTIFY_TIMEOUT_SECONDS + 30)


def due(now: datetime):
    """Pending deliveries whose time came, and claims whose worker gave no answer in time."""
    return Delivery.objects.filter(
        status__in=[DeliveryStatus.PENDING, DeliveryStatus.SENDING], next_try_at__lte=now
    )


def send_due(now: datetime | None = None, limit: int = BATCH) -> int:
    """Send the deliveries due at `now`, one claim at a time; returns how many were tried."""
    tried = 0
    with http_client() as http:
        for row in due(now or timezone.now()).order_by("next_try_at", "pk")[:limit]:
            tried += _send_one(row, http)
    return tried


def _send_one(row: Delivery, http) -> int:
    """Claim and send one delivery; 1 if this worker tried it, 0 if another had taken it."""
    attempt = row.attempts + 1
    claimed = Delivery.objects.filter(pk=row.pk, status=row.status, attempts=row.attempts).update(
        status=DeliveryStatus.SENDING, attempts=attempt, next_try_at=timezone.now() + claim_lease()
    )
    if not claimed:
        return 0
    try:
        send(row, http)
    except SendError as error:
        _record_failure(row, attempt, str(error))
    except Exception as error:  # a bug in a shape or a setting: record it, keep sending the others
        log.exception("notification %s: sending failed", row.key)
        _record_failure(row, attempt, f"{type(error).__name__}: {error}")
    else:
        Delivery.objects.filter(pk=row.pk, status=DeliveryStatus.SENDING, attempts=attempt).update(
            status=DeliveryStatus.DELIVERED, delivered_at=timezone.now(), last_error=""
        )
    return 1


def _record_failure(row: Delivery, attempt: int, error: str) -> None:
    if attempt >= settings.GPUQ_NOTIFY_MAX_ATTEMPTS:
        log.warning("notification %s: gave up after %d attempts: %s", row.key, attempt, error)
        update = {"status": DeliveryStatus.FAILED}
    else:
        log.info("notification %s: attempt %d failed, retrying: %s", row.key, attempt, error)
        update = {
            "status": DeliveryStatus.PENDING,
            "next_try_at": timezone.now() + timedelta(seconds=backoff(attempt)),
        }
    Delivery.objects.filter(pk=row.pk, status=DeliveryStatus.SENDING, attempts=attempt).update(
        last_error=error[:2000], **update
    )


def send_task() -> int:
    """The django-q2 task: fan out what is new, then send until nothing is due; returns how many sends
    were tried."""
    Cursor.objects.filter(pk=cursor().pk).update(kicked_at=None)  # a kick from now on queues another
    fan_out()
    tried = 0
    while sent := send_due():
        tried += sent
    return tried


def kick(now: datetime | None = None) -> bool:
    """Fan out, and queue a sending task when a delivery is due and none is queued; True if it queued."""
    if not settings.GPUQ_NOTIFY_ENABLED:
        return False
    from django_q.tasks import async_task

    _check_notices(timezone.now())
    fan_out(max_batches=KICK_BATCHES)  # bounded: the node loop also heartbeats; the task reads the rest
    now = now or timezone.now()  # after the fan-out: what it just made is due
    if not due(now).exists():
        return False
    row = cursor()
    if not Cursor.objects.filter(
        Q(kicked_at__isnull=True) | Q(kicked_at__lt=now - KICK_STALE), pk=row.pk
    ).update(kicked_at=now):
        return False
    transaction.on_commit(
        lambda: async_task(TASK, cluster=settings.GPUQ_NOTIFY_QUEUE, task_name="gpuq-notifications")
    )
    return True


def _check_notices(now: datetime) -> None:
    """Raise due notices, at most once a NOTICE_PERIOD across all nodes (compare-and-set on the cursor)."""
    stale = Q(checked_at__isnull=True) | Q(checked_at__lt=now - NOTICE_PERIOD)
    if Cursor.objects.filter(stale, pk=cursor().pk).update(checked_at=now):
        notices.check(now)
