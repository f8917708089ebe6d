"""Notices gpuq raises itself, as job events (scheduling.events.emit_notice) that fan-out then delivers:
a job waiting longer than GPUQ_NOTIFY_WAITING_SECONDS ("waiting_long", once per attempt), and a user's
GPU-time quota passing its warning fraction ("quota_80") or its limit ("quota_100"), once per quota
window. Database work only; the node loop runs it through `sending.kick`, at most once a minute."""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from notifications.models import NoticeSent
from scheduling import events, policies, usage
from scheduling.models import GpuQuota, Job, PolicyType
from scheduling.states import HOLDS_GPUS, WAITING, Status

BATCH = 500


def check(now: datetime) -> int:
    """Raise what is due; returns how many notices were raised."""
    return _waiting_long(now) + _quotas(now)


def _raise(notices: list[tuple[str, Job, str, str]]) -> int:
    """Raise each (key, job, notice, detail) whose key was never raised, with its marker, in one
    transaction (a second checker at once fails on the unique key and raises nothing twice)."""
    seen = set(NoticeSent.objects.filter(key__in=[n[0] for n in notices]).values_list("key", flat=True))
    new = [n for n in notices if n[0] not in seen]
    if new:
        with transaction.atomic():
            NoticeSent.objects.bulk_create([NoticeSent(key=key) for key, *_ in new])
            for _, job, notice, detail in new:
                events.emit_notice(job, notice, detail)
    return len(new)


def _waiting_long(now: datetime) -> int:
    threshold = settings.GPUQ_NOTIFY_WAITING_SECONDS
    if not threshold:
        return 0
    # A pending job's `updated_at` is when it last changed status (re-queued, approved, resumed).
    waiting = (
        Job.objects.filter(status=Status.PENDING, updated_at__lt=now - timedelta(seconds=threshold))
        .select_related("owner", "node")
        .order_by("updated_at")[:BATCH]
    )
    return _raise(
        [
            (
                f"waiting_long:{job.pk}:{job.attempt}",
                job,
                "waiting_long",
                f"waiting since {job.updated_at:%Y-%m-%d %H:%M} UTC ({job.wait_reason or 'no reason yet'}"
                f"{': ' + job.wait_detail if job.wait_detail else ''})",
            )
            for job in waiting
        ]
    )


def _quotas(now: datetime) -> int:
    quotas = list(GpuQuota.objects.filter(user__isnull=False).select_related("user"))
    if not quotas:
        return 0
    config = policies.enabled_configs().get(PolicyType.QUOTA, policies.DEFAULTS[PolicyType.QUOTA])
    used = usage.quota_usage(now, config["timezone"])
    starts = dict(zip(("daily", "weekly"), usage.window_starts(now, config["timezone"]), strict=True))
    notices = []
    for quota in quotas:
        for window, limit, spent in (
            ("daily", quota.daily_gpu_seconds, used.user_day.get(quota.user_id, 0.0)),
            ("weekly", quota.weekly_gpu_seconds, used.user_week.get(quota.user_id, 0.0)),
        ):
            if not limit:
                continue
            level = (
                "quota_100"
                if spent >= limit
                else "quota_80"
                if spent >= config["warn_fraction"] * limit
                else None
            )
            job = level and _latest_job(quota.user_id)
            if job:
                detail = (
                    f"{quota.user.username} used {spent / limit:.0%} of the {window} GPU-time quota "
                    f"({round(spent)} of {limit} GPU-seconds)"
                )
                key = f"{level}:u{quota.user_id}:{window}:{starts[window]:%Y-%m-%d}"
                notices.append((key, job, level, detail))
    return _raise(notices)


def _latest_job(user_id: int) -> Job | None:
    """The job a quota notice is told on: the user's newest running job, else their newest waiting one."""
    for statuses in (HOLDS_GPUS, WAITING):
        job = (
            Job.objects.filter(owner_id=user_id, status__in=statuses)
            .select_related("owner", "node")
            .order_by("-pk")
            .first()
        )
        if job:
            return job
    return None
