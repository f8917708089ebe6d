"""Users, teams and levels, managed by admins: make and change users (level, team, Unix account, the
raw-command permission, active), make, rename and delete teams. The API (accounts/people_api.py) and
`manage.py gpuq_user` call these; `by` is the admin acting (None: the server's own operator, at a shell)."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Count, Q, QuerySet

from accounts.models import UNIX_USERNAME, Level, LevelLimits, Profile, Team, check_time_limits
from accounts.permissions import LEVEL_PRIORITY, can_administer, forget
from queueproject.refusals import NotNow, Unprocessable

User = get_user_model()
RAW_COMMAND = ("scheduling", "submit_raw_command")
LEVEL_MEANING = {
    Level.ADMIN: "everything: policies, quotas, templates, users, teams; any job",
    Level.LEAD: "their team's jobs: see, act, approve, set priority up to their ceiling",
    Level.RESEARCHER: "submit and act on their own jobs",
    Level.VIEWER: "read only; never submits or acts",
}


def _require_admin(by) -> None:
    if by is not None and not can_administer(by):
        raise PermissionDenied("Only admins manage users and teams.")


def _raw_permission() -> Permission:
    return Permission.objects.get(content_type__app_label=RAW_COMMAND[0], codename=RAW_COMMAND[1])


def levels() -> list[dict]:
    """The levels, highest first, with the priority each gives by default and at most, and the time
    limit its users' jobs get by default and at most (None: none at this level)."""
    limits = {row.level: row for row in LevelLimits.objects.all()}
    return [_level_out(level, limits.get(level.value)) for level in Level]


def _level_out(level: Level, limits: LevelLimits | None) -> dict:
    return {
        "level": level.value,
        "priority_ceiling": LEVEL_PRIORITY[level],
        "meaning": LEVEL_MEANING[level],
        "default_time_limit_seconds": limits.default_time_limit_seconds if limits else None,
        "max_time_limit_seconds": limits.max_time_limit_seconds if limits else None,
    }


_UNSET = object()


def level_limits_update(*, by, level: str, default_time_limit_seconds=_UNSET, max_time_limit_seconds=_UNSET):
    """Set a level's default and longest time limit (None: none); a field not given is kept."""
    _require_admin(by)
    if level not in Level.values:
        raise ValidationError({"level": f"one of {', '.join(Level.values)}"})
    with transaction.atomic():
        limits, _ = LevelLimits.objects.select_for_update().get_or_create(level=level)
        if default_time_limit_seconds is not _UNSET:
            limits.default_time_limit_seconds = default_time_limit_seconds
        if max_time_limit_seconds is not _UNSET:
            limits.max_time_limit_seconds = max_time_limit_seconds
        check_time_limits(limits.default_time_limit_seconds, limits.max_time_limit_seconds)
        limits.save()
    return _level_out(Level(level), limits)


def raw_command_holders(users) -> set[int]:
    """The ids among `users` holding the raw-command permission directly or through a group (one query)."""
    perm = _raw_permission()
    ids = [u.pk for u in users]
    return set(
        User.objects.filter(pk__in=ids)
        .filter(Q(user_permissions=perm) | Q(groups__permissions=perm))
        .values_list("pk", flat=True)
    )


def user_list(*, team: str = "", level: str = "", q: str = "") -> QuerySet:
    """Users by name, with their profile and team (filters: team name, level, text in the username)."""
    users = User.objects.select_related("profile", "profile__team").order_by("username")
    if team:
        users = users.filter(profile__team__name=team)
    if level == Level.RESEARCHER:  # no profile at all is a researcher too
        users = users.filter(Q(profile__level=level) | Q(profile__isnull=True), is_superuser=False)
    elif level == Level.ADMIN:
        users = users.filter(Q(profile__level=level) | Q(is_superuser=True))
    elif level:
        users = users.filter(profile__level=level, is_superuser=False)
    if q:
        users = users.filter(username__icontains=q)
    return users


def _team(name) -> Team | None:
    if name in (None, ""):
        return None
    team = Team.objects.filter(name=name).first()
    if team is None:
        raise Unprocessable({"team": f"no team named {name!r} (make it first)"})
    return team


def _check_unix_username(value: str) -> str:
    if value:
        if len(value) > 32:
            raise ValidationError({"unix_username": "at most 32 characters"})
        try:
            UNIX_USERNAME(value)
        except ValidationError as error:
            raise ValidationError({"unix_username": error.messages}) from None
    return value


def user_create(
    *,
    by,
    username: str,
    password: str | None = None,
    email: str = "",
    level: str = Level.RESEARCHER,
    team: str | None = None,
    unix_username: str = "",
    can_submit_raw: bool = False,
    is_active: bool = True,
):
    """Make a user with a profile. Without a password the account cannot log in with one: it uses API
    tokens (`manage.py gpuq_token`) until an admin sets one."""
    _require_admin(by)
    if level not in Level.values:
        raise ValidationError({"level": f"one of {', '.join(Level.values)}"})
    team_row = _team(team)
    _check_unix_username(unix_username)
    user = User(username=username, email=email or "", is_active=is_active)
    try:
        User.username_validator(username)
    except ValidationError as error:
        raise ValidationError({"username": error.messages}) from None
    if password:
        try:
            validate_password(password, user)
        except ValidationError as error:
            raise ValidationError({"password": error.messages}) from None
        user.set_password(password)
    else:
        user.set_unusable_password()
    try:
        with transaction.atomic():
            user.save()
            Profile.objects.create(user=user, level=level, team=team_row, unix_username=unix_username)
            if can_submit_raw:
                user.user_permissions.add(_raw_permission())
    except IntegrityError:
        raise NotNow({"username": f"a user named {username!r} already exists"}) from None
    return user


def user_update(*, by, user, **changes):
    """Change any of: level, team (a name; None or "" for none), unix_username, can_submit_raw,
    is_active, email, password. An admin cannot take away their own admin level or deactivate
    themselves (someone must be left to undo it); a superuser is an admin whatever their level."""
    _require_admin(by)
    if by is not None and by.pk == user.pk:
        if changes.get("level", Level.ADMIN) != Level.ADMIN or changes.get("is_active", True) is False:
            raise NotNow({"level": "you cannot take away your own admin rights; ask another admin"})
    if "level" in changes:
        if changes["level"] not in Level.values:
            raise ValidationError({"level": f"one of {', '.join(Level.values)}"})
        if user.is_superuser and changes["level"] != Level.ADMIN:
            raise NotNow({"level": "a superuser is always an admin (remove superuser in the admin)"})
    if "unix_username" in changes:
        _check_unix_username(changes["unix_username"] or "")
    if changes.get("password"):
        try:
            validate_password(changes["password"], user)
        except ValidationError as error:
            raise ValidationError({"password": error.messages}) from None
    with transaction.atomic():
        profile, _ = Profile.objects.select_for_update().get_or_create(user=user)
        if "level" in changes:
            profile.level = changes["level"]
        if "team" in changes:
            profile.team = _team(changes["team"])
        if "unix_username" in changes:
            profile.unix_username = changes["unix_username"] or ""
        profile.save()
        fields = []
        for name in ("is_active", "email"):
            if name in changes:
                setattr(user, name, changes[name] if name == "is_active" else changes[name] or "")
                fields.append(name)
        if changes.get("password"):
            user.set_password(changes["password"])
            fields.append("password")
        if fields:
            user.save(update_fields=fields)
        if "can_submit_raw" in changes:
            (user.user_permissions.add if changes["can_submit_raw"] else user.user_permissions.remove)(
                _raw_permission()
            )
    forget(user)
    user.__dict__.pop("_perm_cache", None)
    user.__dict__.pop("_user_perm_cache", None)
    return User.objects.select_related("profile", "profile__team").get(pk=user.pk)


def team_list(*, q: str = "") -> QuerySet[Team]:
    teams = Team.objects.annotate(member_count=Count("members")).order_by("name")
    return teams.filter(name__icontains=q) if q else teams


def _check_team_name(name: str) -> str:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": "a team needs a name"})
    if len(name) > 100:
        raise ValidationError({"name": "at most 100 characters"})
    return name


def team_create(*, by, name: str) -> Team:
    _require_admin(by)
    name = _check_team_name(name)
    try:
        with transaction.atomic():
            return Team.objects.create(name=name)
    except IntegrityError:
        raise NotNow({"name": f"a team named {name!r} already exists"}) from None


def team_rename(*, by, team: Team, name: str) -> Team:
    _require_admin(by)
    name = _check_team_name(name)
    if Team.objects.filter(name=name).exclude(pk=team.pk).exists():
        raise NotNow({"name": f"a team named {name!r} already exists"})
    team.name = name
    team.save(update_fields=["name"])
    return team


def team_delete(*, by, team: Team) -> None:
    """Delete a team without members (move or remove them first). Its jobs keep running and lose their
    team: team limits and quotas stop counting them; its quota goes with it."""
    _require_admin(by)
    members = team.members.count()
    if members:
        raise NotNow({"name": f"team {team.name} still has {members} member(s); move them first"})
    team.delete()
