"""Who may do what: levels, priority ceilings, raw commands, and which jobs a user sees and acts on."""

from django.conf import settings

from accounts.models import Level, Profile

# Default and ceiling of the priority a user may ask for, by level (DESIGN.md vocabulary).
LEVEL_PRIORITY = {Level.ADMIN: 30, Level.LEAD: 20, Level.RESEARCHER: 10, Level.VIEWER: 0}
LEVEL_PRIORITY.update(getattr(settings, "GPUQ_LEVEL_PRIORITY", {}))


def level_of(user) -> str:
    if user.is_superuser:
        return Level.ADMIN
    profile = Profile.objects.filter(user=user).only("level").first()
    return profile.level if profile else Level.RESEARCHER


def team_of(user):
    profile = Profile.objects.filter(user=user).select_related("team").first()
    return profile.team if profile else None


def is_admin(user) -> bool:
    return user.is_superuser or level_of(user) == Level.ADMIN


def can_submit(user) -> bool:
    return user.is_active and level_of(user) != Level.VIEWER


def can_submit_raw(user) -> bool:
    """Raw argv needs the `scheduling.submit_raw_command` permission; admins hold it."""
    return is_admin(user) or user.has_perm("scheduling.submit_raw_command")


def priority_ceiling(user) -> int:
    return LEVEL_PRIORITY[level_of(user)]


def is_lead_or_admin(user) -> bool:
    return is_admin(user) or level_of(user) == Level.LEAD


def can_act_on(user, job) -> bool:
    """Owners act on their jobs, leads on their team's jobs, admins on all, and anyone a job was shared
    with to act on (django-guardian's `scheduling.act_on_job` on that job). Viewers only read."""
    level = level_of(user)
    if level == Level.VIEWER:
        return False
    if level == Level.ADMIN or job.owner_id == user.pk:
        return True
    if job.team_id is not None and level == Level.LEAD:
        team = team_of(user)
        if team is not None and team.pk == job.team_id:
            return True
    return user.has_perm("scheduling.act_on_job", job)
