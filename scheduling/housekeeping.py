"""The daily retention run (a django-q2 schedule held by one online node): finished jobs older than the
`retention` policy's days (when that policy is on), and every other table that grows: events past the
resume window, idempotency keys, long-expired API tokens, django-q2 task results, what-if simulations,
notification deliveries older than GPUQ_NOTIFY_DELIVERY_DAYS, expired sessions, live relays' old lag
reports and idle-reclaim watches of jobs no longer running."""

import logging
from datetime import datetime, timedelta
from importlib import import_module

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken
from gpus.models import Node, NodeStatus
from notifications.models import Delivery, NoticeSent
from scheduling import policies, retention, simulations
from scheduling.models import Event, IdempotencyKey, IdleWatch, PolicyType, RelayReport
from scheduling.relay import REPORTS_KEPT
from scheduling.states import Status

log = logging.getLogger("gpuq.retention")

SCHEDULE_NAME = "gpuq-retention"
TASK = "scheduling.housekeeping.retention_task"


def events_prune(*, now: datetime) -> int:
    """Remove the events older than GPUQ_EVENT_WINDOW_HOURS, as a prefix in commit order (`seq`, what
    clients resume from); the last of them stays as a `pruned` marker (kind, no data) so that a client
    resuming after a position below it is told to reset (scheduling.live). Events not committed yet (no
    `seq`) are never touched. Returns how many events were pruned."""
    cutoff = now - timedelta(hours=settings.GPUQ_EVENT_WINDOW_HOURS)
    through = (
        Event.objects.filter(at__lt=cutoff, seq__isnull=False)
        .exclude(kind=Event.Kind.PRUNED)
        .order_by("-seq")
        .values_list("pk", "seq")
        .first()
    )
    if through is None:
        return 0
    pk, seq = through
    earlier_marker = Event.objects.filter(seq__lt=seq, kind=Event.Kind.PRUNED).count()
    removed = _in_batches(Event.objects.filter(seq__lt=seq)) - earlier_marker
    Event.objects.filter(pk=pk).update(kind=Event.Kind.PRUNED, job_id=None, data={})
    return removed + 1


def _in_batches(rows: QuerySet) -> int:
    """Delete `rows` GPUQ_RETENTION_BATCH at a time, each batch its own transaction."""
    removed = 0
    while True:
        pks = list(rows.order_by("pk").values_list("pk", flat=True)[: settings.GPUQ_RETENTION_BATCH])
        if not pks:
            return removed
        with transaction.atomic():
            removed += rows.model.objects.filter(pk__in=pks).delete()[0]


def retention_run(now: datetime | None = None) -> dict:
    """Everything retention does once a day; returns how much each step removed."""
    from django_q.models import Task

    now = now or timezone.now()
    report: dict = {}
    rule = policies.enabled_configs().get(PolicyType.RETENTION)
    if rule:
        cutoff = now - timedelta(days=rule["days"])
        report["jobs"] = retention.jobs_cleanup(finished_before=cutoff, now=now).as_dict()
    report["events"] = events_prune(now=now)
    hours = settings.GPUQ_IDEMPOTENCY_HOURS
    report["idempotency_keys"] = _in_batches(
        IdempotencyKey.objects.filter(created_at__lt=now - timedelta(hours=hours))
    )
    days = settings.GPUQ_EXPIRED_TOKEN_DAYS
    report["api_tokens"] = _in_batches(ApiToken.objects.filter(expires_at__lt=now - timedelta(days=days)))
    days = settings.GPUQ_TASK_RESULT_DAYS
    report["task_results"] = _in_batches(Task.objects.filter(stopped__lt=now - timedelta(days=days)))
    # Both are also pruned as they are written; this catches what no running process prunes any more.
    report["relay_reports"] = _in_batches(RelayReport.objects.filter(reported_at__lt=now - REPORTS_KEPT))
    report["idle_watches"] = _in_batches(IdleWatch.objects.exclude(job__status=Status.RUNNING))
    report["simulations"] = simulations.simulations_prune(now=now)
    days = settings.GPUQ_NOTIFY_DELIVERY_DAYS
    report["notification_deliveries"] = _in_batches(
        Delivery.objects.filter(created_at__lt=now - timedelta(days=days))
    )
    report["notification_notices"] = _in_batches(NoticeSent.objects.filter(at__lt=now - timedelta(days=days)))
    engine = import_module(settings.SESSION_ENGINE)
    try:
        engine.SessionStore.clear_expired()
        report["sessions"] = "expired removed"
    except NotImplementedError:
        report["sessions"] = "kept by the session engine"
    log.info("retention run: %s", report)
    return report


def retention_task() -> dict:
    """The schedule's task (django-q2 stores the report as its result)."""
    return retention_run()


def ensure_schedule(*, cluster: str, now: datetime | None = None):
    """Make sure the daily retention schedule exists and is held by an online node's cluster: create it
    for `cluster` (the calling node's queue), or take it over when its holder is no longer online."""
    from django_q.models import Schedule

    now = now or timezone.now()
    with transaction.atomic():
        row = Schedule.objects.select_for_update().filter(name=SCHEDULE_NAME).first()
        if row is None:
            return Schedule.objects.create(
                name=SCHEDULE_NAME,
                func=TASK,
                schedule_type=Schedule.DAILY,
                repeats=-1,
                cluster=cluster,
                next_run=now + timedelta(minutes=10),
            )
        online = {node.queue_name for node in Node.objects.filter(status=NodeStatus.ONLINE)}
        if row.cluster != cluster and row.cluster not in online:
            log.info("retention schedule: %s takes it over from %s", cluster, row.cluster or "nobody")
            row.cluster = cluster
            row.save(update_fields=["cluster"])
        return row
