"""Changing notification settings, shared by the API, the page and the admin: a user's preferences and
own webhook, and the team webhooks that admins set."""

from urllib.parse import urlsplit

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction

from accounts.permissions import is_admin
from notifications.models import DEFAULT_KINDS, Format, Kind, Preference, Webhook, new_secret


def check_url(url: str) -> str:
    """Webhooks are http(s) URLs with a host (no other scheme reaches a receiver)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValidationError({"url": "an http:// or https:// URL with a host"})
    return url


def check_kinds(kinds, field: str = "kinds") -> list[str]:
    unknown = sorted(set(kinds) - set(Kind.values))
    if unknown:
        raise ValidationError(
            {field: f"unknown kind(s) {', '.join(unknown)}; known: {', '.join(Kind.values)}"}
        )
    return sorted(set(kinds))


def preferences_of(user) -> list[dict]:
    """Every kind with the user's channels for it (the default where they chose nothing)."""
    chosen = {p.kind: p for p in Preference.objects.filter(user=user)}
    rows = []
    for kind in Kind:
        pref = chosen.get(kind.value)
        on = kind in DEFAULT_KINDS
        rows.append(
            {
                "kind": kind.value,
                "label": kind.label,
                "email": pref.email if pref else on,
                "webhook": pref.webhook if pref else on,
            }
        )
    return rows


def preferences_set(*, user, changes: dict[str, dict]) -> list[dict]:
    """Set the channels of some kinds: `{"failed": {"email": true, "webhook": false}, ...}` (a channel left
    out keeps its value)."""
    check_kinds(changes)
    current = {row["kind"]: row for row in preferences_of(user)}
    with transaction.atomic():
        for kind, channels in changes.items():
            values = {c: bool(channels.get(c, current[kind][c])) for c in ("email", "webhook")}
            Preference.objects.update_or_create(user=user, kind=kind, defaults=values)
    return preferences_of(user)


def webhook_set(
    *, user, url: str, format: str = Format.JSON, enabled: bool = True, rotate_secret: bool = False
):
    """Make or change the user's own webhook; returns (webhook, secret): the secret only when it was made
    now (a new webhook, or `rotate_secret`), else None: it is shown once."""
    check_url(url)
    hook = Webhook.objects.filter(owner=user).first()
    shown = None
    if hook is None:
        hook = Webhook(owner=user)
        shown = hook.secret
    elif rotate_secret:
        hook.secret = shown = new_secret()
    hook.url, hook.format, hook.enabled = url, format, enabled
    hook.full_clean(exclude=["owner", "team"])
    hook.save()
    return hook, shown


def webhook_remove(*, user) -> bool:
    return Webhook.objects.filter(owner=user).delete()[0] > 0


def _admins_only(user) -> None:
    if not is_admin(user):
        raise PermissionDenied("Only admins set team webhooks.")


def team_hooks(*, user):
    _admins_only(user)
    return Webhook.objects.filter(team__isnull=False).select_related("team").order_by("pk")


def team_hook_create(*, user, team, url: str, kinds: list[str], format: str = Format.JSON, name: str = ""):
    """A team webhook (admins only); returns (webhook, secret), the secret shown this once."""
    _admins_only(user)
    check_url(url)
    hook = Webhook(team=team, url=url, kinds=check_kinds(kinds), format=format, name=name)
    hook.full_clean(exclude=["owner", "team"])
    hook.save()
    return hook, hook.secret


def team_hook_remove(*, user, hook_id: int) -> bool:
    _admins_only(user)
    return Webhook.objects.filter(pk=hook_id, team__isnull=False).delete()[0] > 0
