"""Who may see and do what: the one place that decides, for the API, the pages, the websocket and the
admin alike, from gpuq's levels (admin, lead, researcher, viewer), teams and per-job shares.

Rules: admins see and do everything. Owners see and act on their jobs; leads see and act on their
team's jobs; a job shared `view` is seen, shared `act` is also acted on (cancel, pause, resume, lower
its priority). Viewers read and never act. Leads approve or reject their team's blocked jobs, never
their own (admins may). Priorities: admins set any in [-1000, 1000]; leads set their team's jobs within
[Background (-10), their level's ceiling]; owners (and those a job is shared with to act) may only lower
it. `env` is seen by the owner and admins only. Django's `is_staff` and model permissions grant nothing
here: a staff member is what their level says (no profile: a researcher without a team).

A user's level and team are read once and kept on the user object (`_gpuq_facts`): a request's user
is loaded fresh for each request, so lists check permissions without one query per row."""

from django.conf import settings
from django.db.models import Q

from accounts.models import Level, Profile

# Default and ceiling of the priority a user may ask for, by level (DESIGN.md vocabulary).
LEVEL_PRIORITY = {Level.ADMIN: 30, Level.LEAD: 20, Level.RESEARCHER: 10, Level.VIEWER: 0}
LEVEL_PRIORITY.update(getattr(settings, "GPUQ_LEVEL_PRIORITY", {}))
LOWEST_TIER = -10  # Background: the floor of what leads may set on their team's jobs
PRIORITY_LIMITS = (-1000, 1000)  # what admins may set; the range of the priority field

VIEW_JOB, ACT_ON_JOB = "view_job", "act_on_job"  # guardian codenames of a job's shares


def _facts(user) -> tuple[str, object]:
    """(level, team) of the user, read once per user object. Anonymous and inactive users are viewers
    without a team (they read nothing either: every view needs a login)."""
    facts = getattr(user, "_gpuq_facts", None)
    if facts is None:
        if not (user.is_authenticated and user.is_active):
            facts = (Level.VIEWER, None)
        else:
            profile = _loaded_profile(user)
            level = profile.level if profile else Level.RESEARCHER
            facts = (Level.ADMIN if user.is_superuser else level, profile.team if profile else None)
        user._gpuq_facts = facts
    return facts


def _loaded_profile(user) -> Profile | None:
    """The user's profile with its team: the one loaded with the user (`select_related`), else read."""
    loaded = user._state.fields_cache  # what select_related brought (`request.user` may be a lazy proxy)
    if "profile" in loaded:
        profile = loaded["profile"]  # None: loaded, and the user has none
        if profile is None or "team" in profile._state.fields_cache:
            return profile
    return Profile.objects.select_related("team").filter(user_id=user.pk).first()


def forget(user) -> None:
    """Drop what `_facts` kept on this user object, so the next check reads the level and team again
    (for long-lived objects such as a websocket's user)."""
    user.__dict__.pop("_gpuq_facts", None)
    user.__dict__.pop("_gpuq_raw", None)
    if getattr(user, "_state", None) is not None:
        user._state.fields_cache.pop("profile", None)  # one loaded with the user is as old


def level_of(user) -> str:
    return _facts(user)[0]


def team_of(user):
    """The user's Team, or None."""
    return _facts(user)[1]


def _team_id(user) -> int | None:
    team = team_of(user)
    return team.pk if team is not None else None


def is_admin(user) -> bool:
    return level_of(user) == Level.ADMIN


def is_lead_or_admin(user) -> bool:
    return level_of(user) in (Level.ADMIN, Level.LEAD)


def can_submit(user) -> bool:
    return user.is_authenticated and user.is_active and level_of(user) != Level.VIEWER


def can_submit_raw(user) -> bool:
    """Raw argv needs the `scheduling.submit_raw_command` permission; admins hold it."""
    return is_admin(user) or (can_submit(user) and _holds_raw_permission(user))


def _holds_raw_permission(user) -> bool:
    """Whether the user holds `scheduling.submit_raw_command`, themselves or through a group: one query,
    kept on the user object like the level (Django's `has_perm` read every permission of the user and
    of their groups, two queries in each submission)."""
    held = getattr(user, "_gpuq_raw", None)
    if held is None:
        from django.contrib.auth.models import Permission

        held = (
            Permission.objects.filter(content_type__app_label="scheduling", codename="submit_raw_command")
            .filter(Q(user=user) | Q(group__user=user))
            .exists()
        )
        user._gpuq_raw = held
    return held


def priority_ceiling(user) -> int:
    return LEVEL_PRIORITY[level_of(user)]


def _leads(user, job) -> bool:
    """The user is a lead of the job's team."""
    return level_of(user) == Level.LEAD and job.team_id is not None and job.team_id == _team_id(user)


def _shares(user, job) -> set[str]:
    """What the job was shared with this user for (guardian's direct per-job rows)."""
    from scheduling.models import JobUserObjectPermission

    if not user.is_authenticated or job.pk is None:
        return set()
    return set(
        JobUserObjectPermission.objects.filter(user_id=user.pk, content_object_id=job.pk).values_list(
            "permission__codename", flat=True
        )
    )


# Jobs: seeing them.


def visible_jobs(user):
    """The jobs whose details (argv, params, log, transitions) the user may read: all for admins; their
    own, their team's for leads, and those shared with them. Anything else is as if it did not exist."""
    from scheduling.models import Job, JobUserObjectPermission

    jobs = Job.objects.select_related("owner", "node", "template")
    if not (user.is_authenticated and user.is_active):
        return jobs.none()
    if is_admin(user):
        return jobs
    shared = JobUserObjectPermission.objects.filter(user_id=user.pk).values("content_object_id")
    mine = Q(owner_id=user.pk) | Q(pk__in=shared)
    if level_of(user) == Level.LEAD and (team_id := _team_id(user)) is not None:
        mine |= Q(team_id=team_id)
    return jobs.filter(mine)


def can_view_job(user, job) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if is_admin(user) or job.owner_id == user.pk or _leads(user, job):
        return True
    return bool(_shares(user, job))


def can_see_env(user, job) -> bool:
    """`env` often holds keys: the owner and admins only, never a lead or a share."""
    return user.is_authenticated and user.is_active and (is_admin(user) or job.owner_id == user.pk)


# Jobs: acting on them.


def can_act_on_job(user, job) -> bool:
    """Cancel, pause, resume: owners, leads of the job's team, admins, and users the job was shared
    with to act. Viewers never act, whatever was shared with them."""
    if not (user.is_authenticated and user.is_active) or level_of(user) == Level.VIEWER:
        return False
    if is_admin(user) or job.owner_id == user.pk or _leads(user, job):
        return True
    return ACT_ON_JOB in _shares(user, job)


can_act_on = can_act_on_job  # the name other modules used before


def actable_job_ids(user, jobs) -> set[int]:
    """The ids among `jobs` the user may act on, in one query at most (pages list many jobs)."""
    from scheduling.models import JobUserObjectPermission

    jobs = list(jobs)
    if not (user.is_authenticated and user.is_active) or level_of(user) == Level.VIEWER:
        return set()
    if is_admin(user):
        return {job.pk for job in jobs}
    ids = {job.pk for job in jobs if job.owner_id == user.pk or _leads(user, job)}
    rest = [job.pk for job in jobs if job.pk not in ids]
    if rest:
        ids |= set(
            JobUserObjectPermission.objects.filter(
                user_id=user.pk, content_object_id__in=rest, permission__codename=ACT_ON_JOB
            ).values_list("content_object_id", flat=True)
        )
    return ids


# Sweeps (job arrays): seen and acted on as a whole by their owner, their team's leads and admins.


def visible_sweeps(user):
    """The sweeps the user may watch and depend on: their own, their team's for leads, all for admins
    (a job of a sweep shared alone is seen as that job, not as its sweep)."""
    from scheduling.models import Sweep

    sweeps = Sweep.objects.select_related("owner", "template")
    if not (user.is_authenticated and user.is_active):
        return sweeps.none()
    if is_admin(user):
        return sweeps
    mine = Q(owner_id=user.pk)
    if level_of(user) == Level.LEAD and (team_id := _team_id(user)) is not None:
        mine |= Q(team_id=team_id)
    return sweeps.filter(mine)


def can_act_on_sweep(user, sweep) -> bool:
    """Cancel a whole sweep: whoever may act on each of its jobs by owning or leading them."""
    if not (user.is_authenticated and user.is_active) or level_of(user) == Level.VIEWER:
        return False
    return is_admin(user) or sweep.owner_id == user.pk or _leads(user, sweep)


def can_approve_job(user, job) -> bool:
    """Approve or reject a blocked job: admins any; leads their team's jobs, never their own."""
    if is_admin(user):
        return True
    return _leads(user, job) and job.owner_id != user.pk


def approvable_jobs(user):
    """The blocked jobs the user may approve or reject, as one query (`can_approve_job` over many rows):
    every one for admins; a lead's team's, less their own; none for anyone else."""
    from scheduling.models import Job
    from scheduling.states import Status

    jobs = Job.objects.filter(status=Status.BLOCKED).select_related("owner", "team")
    if not (user.is_authenticated and user.is_active):
        return jobs.none()
    if is_admin(user):
        return jobs
    if level_of(user) == Level.LEAD and (team_id := _team_id(user)) is not None:
        return jobs.filter(team_id=team_id).exclude(owner_id=user.pk)
    return jobs.none()


def approval_refusal(user, job) -> str:
    """Why `can_approve_job` said no, for the 403."""
    if _leads(user, job):
        return "You cannot approve or reject your own job: another lead of your team or an admin does."
    if level_of(user) == Level.LEAD:
        return "Leads approve and reject their own team's jobs only."
    return "Only leads (of the job's team) and admins approve or reject jobs."


def can_set_priority(user, job, priority: int) -> str | None:
    """None if the user may give the job this priority, else why not (for a 400 naming `priority`;
    callers answer 403 first when the user may not act on the job at all)."""
    low, high = PRIORITY_LIMITS
    if not isinstance(priority, int) or isinstance(priority, bool) or not low <= priority <= high:
        return f"a whole number from {low} to {high}"
    if not can_act_on_job(user, job):
        return "you may not change this job's priority"
    if is_admin(user):
        return None
    lowering = priority <= job.priority
    if lowering and (job.owner_id == user.pk or ACT_ON_JOB in _shares(user, job)):
        return None  # owners (and their delegates) may always lower their own job
    if _leads(user, job):
        ceiling = priority_ceiling(user)
        if not LOWEST_TIER <= priority <= ceiling:
            return f"leads set their team's jobs from {LOWEST_TIER} (Background) to {ceiling} (your ceiling)"
        return None
    return "you may lower your job's priority; raising it needs a lead or admin"


def can_share_job(user, job) -> bool:
    return user.is_authenticated and user.is_active and (is_admin(user) or job.owner_id == user.pk)


# The Django admin.


def can_administer(user) -> bool:
    """Policies, quotas, templates, users, teams, tokens, nodes and GPUs: gpuq admins only (superusers or
    level admin), whatever Django model permissions a staff member holds."""
    return user.is_authenticated and user.is_active and is_admin(user)
