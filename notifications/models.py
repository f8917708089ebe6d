"""What users want to hear about (preferences, webhooks) and what was sent (the delivery log)."""

import secrets

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Kind(models.TextChoices):
    """What a notification is about. Job notices (`scheduling.events.emit_notice`) use the same names."""

    STARTED = "started", "Job started"
    COMPLETED = "completed", "Job completed"
    FAILED = "failed", "Job failed"
    REQUEUED = "requeued", "Job preempted or requeued"
    STALLED = "stalled", "Job stalled"
    IDLE_WARNING = "idle_warning", "Job's GPUs idle"
    WAITING_LONG = "waiting_long", "Job waiting long"
    QUOTA_80 = "quota_80", "Quota 80% used"
    QUOTA_100 = "quota_100", "Quota used up"
    APPROVAL_NEEDED = "approval_needed", "Approval needed"
    APPROVED = "approved", "Job approved"
    REJECTED = "rejected", "Job rejected"
    NODE_OFFLINE = "node_offline", "Node offline"


# What a user hears about by e-mail (and by their webhook, once they set one) until they choose.
DEFAULT_KINDS = frozenset(
    {
        Kind.FAILED,
        Kind.STALLED,
        Kind.IDLE_WARNING,
        Kind.QUOTA_100,
        Kind.APPROVAL_NEEDED,
        Kind.APPROVED,
        Kind.REJECTED,
        Kind.NODE_OFFLINE,
    }
)


class Channel(models.TextChoices):
    EMAIL = "email", "E-mail"
    WEBHOOK = "webhook", "Webhook"


class Format(models.TextChoices):
    """The body a webhook receives (notifications.channels.webhook_body)."""

    JSON = "json", "Plain JSON"
    SLACK = "slack", "Slack"
    DISCORD = "discord", "Discord"
    TEAMS = "teams", "Microsoft Teams"


class Preference(models.Model):
    """One user's choice for one kind; a kind without a row follows DEFAULT_KINDS."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=32, choices=Kind.choices)
    email = models.BooleanField(default=False)
    webhook = models.BooleanField(default=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="notify_one_preference_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.kind}: email={self.email} webhook={self.webhook}"


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


class Webhook(models.Model):
    """A URL that receives signed notifications: a user's own (at most one; which kinds it gets is in their
    preferences) or a team's, set by admins (`kinds` says which kinds; it gets the team's jobs' events with
    only the fields everyone sees on the queue page). `secret` signs each body (notifications.channels)."""

    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="webhooks"
    )
    name = models.CharField(max_length=100, blank=True, default="")
    url = models.URLField(max_length=500)
    format = models.CharField(max_length=16, choices=Format.choices, default=Format.JSON)
    secret = models.CharField(max_length=100, default=new_secret, editable=False)
    kinds = models.JSONField(default=list, blank=True, help_text="Team hooks: the kinds it receives.")
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(owner__isnull=False, team__isnull=True)
                | Q(owner__isnull=True, team__isnull=False),
                name="notify_webhook_owner_xor_team",
            ),
            models.UniqueConstraint(
                fields=["owner"], condition=Q(owner__isnull=False), name="notify_one_webhook_per_user"
            ),
        ]

    def __str__(self) -> str:
        whose = f"team {self.team}" if self.team_id else f"user {self.owner}"
        return f"{self.name or self.url} ({whose}, {self.format})"

    @property
    def secret_hint(self) -> str:
        return self.secret[:10]


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"  # to send at next_try_at (again, when attempts > 0)
    SENDING = "sending", "Sending"  # claimed by a worker until next_try_at (then claimable again)
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"  # given up after GPUQ_NOTIFY_MAX_ATTEMPTS


class Delivery(models.Model):
    """One notification to one recipient on one channel. `key` (event seq, recipient, channel) is unique:
    an event is never turned into two deliveries of the same thing, however often it is read. The payload
    is fixed when the delivery is made, so sending reads nothing else."""

    key = models.CharField(max_length=100, unique=True)
    event_seq = models.BigIntegerField()
    kind = models.CharField(max_length=32, choices=Kind.choices)
    job_id = models.BigIntegerField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notification_deliveries",
    )
    webhook = models.ForeignKey(Webhook, null=True, blank=True, on_delete=models.SET_NULL)
    channel = models.CharField(max_length=16, choices=Channel.choices)
    target = models.CharField(max_length=500, help_text="The address or URL when the delivery was made.")
    payload = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True, default="")
    next_try_at = models.DateTimeField(default=timezone.now)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name_plural = "deliveries"
        indexes = [models.Index(fields=["status", "next_try_at"], name="notify_delivery_due")]

    def __str__(self) -> str:
        return f"{self.kind} to {self.target} ({self.status})"


class Cursor(models.Model):
    """How far fan-out has read the event stream (`seq`), and when a sending task was last queued."""

    name = models.CharField(max_length=32, unique=True)
    seq = models.BigIntegerField(default=0)
    kicked_at = models.DateTimeField(null=True, blank=True)
    checked_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"{self.name} at {self.seq}"


class NoticeSent(models.Model):
    """A notice gpuq raised itself (notifications.notices), so that it is raised once: "waiting_long" once
    per job attempt, a quota level once per user and quota window."""

    key = models.CharField(max_length=100, unique=True)
    at = models.DateTimeField(default=timezone.now, db_index=True)

    def __str__(self) -> str:
        return self.key
