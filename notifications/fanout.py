"""Fan-out: events, read in commit order (`seq`, as scheduling.relay reads them), become `Delivery` rows,
one per recipient and channel. Database work only, no network: the node loop and the sending task run it.

Who hears what: a job's owner hears about their own job (whole); "approval needed" goes to those who may
approve the job (accounts.permissions.can_approve_job: the team's leads and the admins), who may read it;
"node offline" goes to the admins. Team webhooks (set by admins) hear about their team's jobs with only the
fields everyone sees on the queue page (scheduling.events.PUBLIC_JOB_FIELDS), and about nodes going
offline. Each user's preferences pick the channels; a kind without a preference follows DEFAULT_KINDS."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q

from accounts.models import Level
from accounts.permissions import can_approve_job
from notifications.kinds import classify
from notifications.messages import compose
from notifications.models import DEFAULT_KINDS, Channel, Cursor, Delivery, Kind, Preference, Webhook
from scheduling import logs
from scheduling.models import Job
from scheduling.relay import events_after, latest_seq

BATCH = 500  # events read at a time
CURSOR = "fan-out"


def cursor() -> Cursor:
    """The fan-out's position; made at the stream's newest event (no notifications about the past)."""
    row = Cursor.objects.filter(name=CURSOR).first()
    if row is None:
        row, _ = Cursor.objects.get_or_create(name=CURSOR, defaults={"seq": latest_seq()})
    return row


def fan_out(limit: int = BATCH, max_batches: int | None = None) -> int:
    """Turn the events after the cursor (all, or `max_batches` batches of `limit`) into their deliveries;
    returns how many deliveries were made.
    The cursor moves by compare-and-set in the transaction that writes the deliveries: two fan-outs at
    once make each delivery once (and the unique key would refuse a second anyway)."""
    made = batches = 0
    while max_batches is None or batches < max_batches:
        batches += 1
        row = cursor()
        events = events_after(row.seq, limit)
        if not events:
            return made
        deliveries = deliveries_for(events)
        with transaction.atomic():
            if not Cursor.objects.filter(pk=row.pk, seq=row.seq).update(seq=events[-1]["id"]):
                continue  # another fan-out took these events: read on from where it got
            Delivery.objects.bulk_create(deliveries, ignore_conflicts=True)
        made += len(deliveries)
        if len(events) < limit:
            return made
    return made


class _People:
    """Users, preferences and webhooks for one batch of events, in a few queries."""

    def __init__(self, jobs: dict, kinds: set[str]):
        users = {job.owner_id: job.owner for job in jobs.values()}
        self.staff = []
        if kinds & {Kind.APPROVAL_NEEDED, Kind.NODE_OFFLINE}:
            staff = get_user_model().objects.filter(
                Q(is_superuser=True) | Q(profile__level__in=[Level.ADMIN, Level.LEAD]), is_active=True
            )
            self.staff = [users.setdefault(user.pk, user) for user in staff.distinct()]
        self.prefs = {
            (p.user_id, p.kind): p for p in Preference.objects.filter(user_id__in=users, kind__in=kinds)
        }
        self.hooks = {h.owner_id: h for h in Webhook.objects.filter(owner_id__in=users, enabled=True)}
        self.team_hooks = list(Webhook.objects.filter(team__isnull=False, enabled=True))

    def admins(self) -> list:
        from accounts.permissions import is_admin

        return [user for user in self.staff if is_admin(user)]

    def approvers(self, job) -> list:
        return [user for user in self.staff if can_approve_job(user, job)]

    def channels(self, user, kind: str) -> tuple[bool, bool]:
        pref = self.prefs.get((user.pk, kind))
        if pref is None:
            return kind in DEFAULT_KINDS, kind in DEFAULT_KINDS
        return pref.email, pref.webhook


def deliveries_for(events: list[dict]) -> list[Delivery]:
    """The deliveries these events make (unsaved)."""
    told = [(message, kind) for message in events if (kind := classify(message))]
    if not told:
        return []
    job_ids = {message["job"] for message, _ in told if message["job"]}
    jobs = {job.pk: job for job in Job.objects.filter(pk__in=job_ids).select_related("owner")}
    people = _People(jobs, {kind for _, kind in told})
    failed_logs = {
        job_id: logs.tail(job_id, settings.GPUQ_NOTIFY_LOG_LINES)[0]
        for job_id in {m["job"] for m, kind in told if kind == Kind.FAILED and m["job"] in jobs}
    }
    made = []
    for message, kind in told:
        job = jobs.get(message["job"])
        if message["job"] and job is None:
            continue  # removed meanwhile: nothing left to point at
        if kind == Kind.NODE_OFFLINE:
            recipients = people.admins()
        elif kind == Kind.APPROVAL_NEEDED:
            recipients = people.approvers(job)
        else:
            recipients = [job.owner]
        whole = compose(message, kind, full=True, log=failed_logs.get(message["job"]))
        for user in recipients:
            if not user.is_active:
                continue
            email, webhook = people.channels(user, kind)
            if email and user.email:
                made.append(_delivery(message, kind, whole, f"u{user.pk}", Channel.EMAIL, user.email, user))
            hook = people.hooks.get(user.pk)
            if webhook and hook is not None:
                made.append(
                    _delivery(message, kind, whole, f"u{user.pk}", Channel.WEBHOOK, hook.url, user, hook)
                )
        public = None
        for hook in people.team_hooks:
            if kind in hook.kinds and (job is None or job.team_id == hook.team_id):
                public = public or compose(message, kind, full=False)
                made.append(
                    _delivery(message, kind, public, f"h{hook.pk}", Channel.WEBHOOK, hook.url, None, hook)
                )
    return made


def _delivery(message, kind, payload, recipient, channel, target, user, hook=None) -> Delivery:
    key = f"{message['id']}:{recipient}:{channel}"
    return Delivery(
        key=key,
        event_seq=message["id"],
        kind=kind,
        job_id=message["job"],
        user=user,
        webhook=hook,
        channel=channel,
        target=target,
        payload={**payload, "delivery": key},
    )
