"""Users' own API tokens: list, make and revoke them (the API, the tokens page and `gpuq_token` call these)."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils import timezone

from accounts.models import ApiToken


def token_list(*, user) -> QuerySet[ApiToken]:
    """The user's tokens, expired ones included, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at", "-id")


def token_days(days) -> int:
    """A lifetime in whole days, 1 to GPUQ_TOKEN_MAX_DAYS; None means the maximum."""
    maximum = settings.GPUQ_TOKEN_MAX_DAYS
    if days is None or days == "":
        return maximum
    try:
        value = int(days)
    except (TypeError, ValueError):
        raise ValidationError({"days": f"a whole number of days from 1 to {maximum}"}) from None
    if isinstance(days, float) and days != value or not 1 <= value <= maximum:
        raise ValidationError({"days": f"a whole number of days from 1 to {maximum} (GPUQ_TOKEN_MAX_DAYS)"})
    return value


def token_create(
    *, user, name: str = "", days=None, made_with: ApiToken | None = None
) -> tuple[ApiToken, str]:
    """Make a token for `user`; return it with its key (shown once). A token made by a request that was
    itself authenticated by a token (`made_with`) expires no later than that one: a stolen token cannot
    extend its own life."""
    name = (name or "").strip() or "default"
    if len(name) > 100:
        raise ValidationError({"name": "at most 100 characters"})
    now = timezone.now()
    expires_at = now + timedelta(days=token_days(days))
    if made_with is not None:
        expires_at = min(expires_at, made_with.expires_at)
    return ApiToken.issue(user=user, name=name, expires_at=expires_at, now=now)


def token_revoke(*, user, token_id: int) -> bool:
    """Delete one of the user's own tokens; False when the user has no token with that id (another
    user's token included)."""
    deleted, _ = ApiToken.objects.filter(user=user, pk=token_id).delete()
    return deleted > 0
