"""Teams, user profiles (level and team) and hashed, expiring API tokens."""

import hashlib
import secrets
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from queueproject.refusals import Unprocessable


class Level(models.TextChoices):
    ADMIN = "admin", "Admin"
    LEAD = "lead", "Lead"
    RESEARCHER = "researcher", "Researcher"
    VIEWER = "viewer", "Viewer"


# POSIX portable user names (what useradd accepts by default).
UNIX_USERNAME = RegexValidator(r"^[a-z_][a-z0-9_.-]*[$]?$", "Not a Unix user name (e.g. alice, a_smith).")


class Team(models.Model):
    name = models.CharField(max_length=100, unique=True)

    def __str__(self) -> str:
        return self.name


class Profile(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="profile")
    level = models.CharField(max_length=16, choices=Level.choices, default=Level.RESEARCHER)
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="members")
    # Set by admins only (the admin, the admins-only users API, `gpuq_user`): with GPUQ_RUN_AS=user, this
    # user's jobs run as it.
    unix_username = models.CharField(
        max_length=32,
        blank=True,
        validators=[UNIX_USERNAME],
        help_text="The user's own Unix account on the GPU nodes; their jobs run as it when GPUQ_RUN_AS=user.",
    )

    def __str__(self) -> str:
        return f"{self.user} ({self.level})"


class LevelLimits(models.Model):
    """A level's time limits (Slurm's DefaultTime/MaxTime): the limit its users' jobs get when neither
    they nor the template set one, and the most they may ask for. Empty: none at this level."""

    level = models.CharField(max_length=16, choices=Level.choices, unique=True)
    default_time_limit_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="Used when neither the submit nor the template sets a limit."
    )
    max_time_limit_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest limit this level's users may ask for."
    )

    class Meta:
        verbose_name_plural = "level limits"

    def __str__(self) -> str:
        return f"limits of {self.level}"

    def clean(self):
        check_time_limits(self.default_time_limit_seconds, self.max_time_limit_seconds)


def check_time_limits(default: int | None, maximum: int | None) -> None:
    """A default time limit above its own maximum is refused, naming the field."""
    for field, value in (("default_time_limit_seconds", default), ("max_time_limit_seconds", maximum)):
        if value is not None and value < 1:
            raise ValidationError({field: "at least 1 second (empty: none)"})
    if default is not None and maximum is not None and default > maximum:
        raise Unprocessable({"default_time_limit_seconds": f"at most the maximum ({maximum} s)"})


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiTokenQuerySet(models.QuerySet):
    def active(self, now=None):
        now = now or timezone.now()
        return self.filter(expires_at__gt=now)


def token_max_lifetime() -> timedelta:
    return timedelta(days=settings.GPUQ_TOKEN_MAX_DAYS)


class ApiToken(models.Model):
    """An API token. Only its SHA-256 digest is stored; the key is shown once, when it is made. Every
    token expires, at most GPUQ_TOKEN_MAX_DAYS after it is made."""

    PREFIX = "gpuq_"

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    digest = models.CharField(max_length=64, unique=True, editable=False)
    hint = models.CharField(max_length=12, editable=False, help_text="The first characters of the key.")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiTokenQuerySet.as_manager()

    def __str__(self) -> str:
        return f"{self.hint}… ({self.user}, {self.name})"

    def clean(self):
        latest = (self.created_at or timezone.now()) + token_max_lifetime()
        if self.expires_at is not None and self.expires_at > latest:
            raise ValidationError(
                {"expires_at": f"at most {settings.GPUQ_TOKEN_MAX_DAYS} days after the token was made"}
            )

    @classmethod
    def issue(cls, *, user, name: str = "default", expires_at=None, now=None) -> tuple["ApiToken", str]:
        """Create a token; return it with its plain key, which is not stored anywhere. It expires at
        `expires_at`, which may be at most GPUQ_TOKEN_MAX_DAYS away (ValidationError otherwise); None
        means that maximum. `now` is its creation time (default: now)."""
        now = now or timezone.now()
        if expires_at is None:
            expires_at = now + token_max_lifetime()
        elif expires_at > now + token_max_lifetime():
            raise ValidationError(
                {"expires_at": f"at most {settings.GPUQ_TOKEN_MAX_DAYS} days from now (GPUQ_TOKEN_MAX_DAYS)"}
            )
        key = cls.PREFIX + secrets.token_urlsafe(32)
        token = cls.objects.create(
            user=user, name=name, digest=_digest(key), hint=key[:12], created_at=now, expires_at=expires_at
        )
        return token, key

    @classmethod
    def find(cls, key: str):
        """The active token for a plain key, or None; its user comes with their profile and team (every
        request checks the level: accounts.permissions reads them from here, not in a query of its own)."""
        return cls.objects.active().select_related("user__profile__team").filter(digest=_digest(key)).first()
