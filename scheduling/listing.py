"""Lists that scale: the filters, search, sort and paging of the queue and of "my jobs", applied in the
database, so a page reads one page of rows whatever the size of the queue."""

import threading
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, Max, Q, QuerySet, Value, When
from django.utils import timezone

from scheduling import batching, planner
from scheduling.models import Job, WaitReason
from scheduling.states import HOLDS_GPUS, Status

HELD = (Status.SCHEDULED, Status.BLOCKED, Status.PAUSED)

# Sort keys a list accepts: the name in the query string -> the database ordering.
SORTS = {
    "position": None,  # the queue's own order (the planner's); on my jobs: newest first
    "newest": ("-submitted_at", "-id"),
    "oldest": ("submitted_at", "id"),
    "priority": ("-priority", "submitted_at", "id"),
    "gpus": ("-gpu_count", "submitted_at", "id"),
    "owner": ("owner__username", "submitted_at", "id"),
}


class BadFilter(ValueError):
    """A filter value that cannot be used: `field` names the query parameter."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class Filters:
    """What a user asked to see. Empty values filter nothing."""

    q: str = ""  # search: a job id (12 or #12), or text in the job's name or its owner's username
    status: tuple[str, ...] = ()
    owner: str = ""  # username
    team: str = ""  # team name
    reason: str = ""  # wait reason
    template: str = ""  # template name
    sort: str = "position"

    @classmethod
    def parse(cls, params) -> "Filters":
        """From a query string (a QueryDict); a bad value raises BadFilter naming its parameter."""
        statuses = tuple(s for value in params.getlist("status") for s in value.split(",") if s)
        unknown = sorted(set(statuses) - set(Status.values))
        if unknown:
            raise BadFilter(
                "status", f"unknown status {', '.join(unknown)}; one of {', '.join(Status.values)}"
            )
        reason = params.get("reason", "")
        if reason and reason not in WaitReason.values:
            raise BadFilter("reason", f"unknown reason {reason}; one of {', '.join(WaitReason.values[1:])}")
        sort = params.get("sort") or "position"
        if sort not in SORTS:
            raise BadFilter("sort", f"unknown sort {sort}; one of {', '.join(SORTS)}")
        return cls(
            q=params.get("q", "").strip()[:200],
            status=statuses,
            owner=params.get("owner", "").strip(),
            team=params.get("team", "").strip(),
            reason=reason,
            template=params.get("template", "").strip(),
            sort=sort,
        )

    @property
    def active(self) -> bool:
        return any((self.q, self.status, self.owner, self.team, self.reason, self.template))

    def apply(self, jobs: QuerySet[Job]) -> QuerySet[Job]:
        if self.status:
            jobs = jobs.filter(status__in=self.status)
        if self.owner:
            jobs = jobs.filter(owner__username=self.owner)
        if self.team:
            jobs = jobs.filter(team__name=self.team)
        if self.reason:
            jobs = jobs.filter(wait_reason=self.reason)
        if self.template:
            jobs = jobs.filter(template__name=self.template)
        if self.q:
            text = Q(name__icontains=self.q) | Q(owner__username__icontains=self.q)
            number = self.q.removeprefix("#")
            is_id = number.isdigit() and len(number) <= 18  # within a bigint
            jobs = jobs.filter(text | Q(pk=int(number)) if is_id else text)
        return jobs

    def ordered(self, jobs: QuerySet[Job], default: tuple[str, ...]) -> QuerySet[Job]:
        return jobs.order_by(*(SORTS[self.sort] or default))


def page_size(params) -> int:
    """The page size asked for (`size`), within 1 and GPUQ_MAX_PAGE_SIZE; GPUQ_PAGE_SIZE without one."""
    raw = params.get("size", "")
    if not raw:
        return settings.GPUQ_PAGE_SIZE
    if not raw.isdigit() or int(raw) < 1:
        raise BadFilter("size", f"a whole number from 1 to {settings.GPUQ_MAX_PAGE_SIZE}")
    return min(int(raw), settings.GPUQ_MAX_PAGE_SIZE)


def paginate(items, number, size: int) -> Page:
    """One page of `items` (a queryset or a list); a page number past the end gives the last page."""
    return Paginator(items, size, allow_empty_first_page=True).get_page(number)


# --- the queue -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """The queue's order and estimates, as the planner computes them from a snapshot."""

    positions: dict[int, int]  # pending job id -> 1-based position
    estimates: dict = field(default_factory=dict)  # pending job id -> estimates.Estimate


def _compute(now: datetime) -> Plan:
    from scheduling import selectors
    from scheduling.estimates import estimate_starts

    snap = selectors.snapshot(now)
    ordered = planner.queue_order(snap, now)
    return Plan({j.id: position for position, j in enumerate(ordered, start=1)}, estimate_starts(snap, now))


_reuse_lock = threading.Lock()
_last: dict = {}  # this process's last plan and what it was computed from


def plan(now: datetime | None = None) -> Plan:
    """The queue's plan. Reads reuse this process's last plan while nothing changed: no new event (every
    transition, reorder and reason change writes one) and no new job since, and for at most
    GPUQ_PLAN_REUSE_SECONDS (the time-dependent parts: ageing, usage, estimates). So twenty open pages
    cost one planning per change, not twenty; a given `now` always plans afresh."""
    if now is not None or settings.GPUQ_PLAN_REUSE_SECONDS <= 0:
        return _compute(now or timezone.now())
    from django.db import connection

    from scheduling.models import Event

    key = (
        connection.settings_dict["NAME"],
        Event.objects.aggregate(last=Max("id"))["last"],
        Job.objects.aggregate(last=Max("id"))["last"],
    )
    with _reuse_lock:
        fresh = time.monotonic() - _last.get("at", float("-inf")) < settings.GPUQ_PLAN_REUSE_SECONDS
        if _last.get("key") == key and fresh:
            return _last["plan"]
    at = time.monotonic()
    result = _compute(timezone.now())
    with _reuse_lock:
        _last.update(key=key, plan=result, at=at)
    return result


def _entry(job: Job, position: int | None, estimate=None):
    """A queue entry; `estimate` is a waiting job's estimated start range (estimates.Estimate) or None."""
    from scheduling.selectors import QueueEntry, _range

    return QueueEntry(job, position, *_range(estimate))


def _with_related(jobs: QuerySet[Job]) -> QuerySet[Job]:
    return jobs.select_related("owner", "node", "team", "template")


def running(filters: Filters) -> list:
    """Dispatched and running jobs (as many as there are GPUs at most), oldest start first."""
    jobs = filters.apply(Job.objects.filter(status__in=HOLDS_GPUS))
    return [_entry(job, None) for job in filters.ordered(_with_related(jobs), ("started_at", "id"))]


def pending_ids(filters: Filters, the_plan: Plan) -> list[int]:
    """The waiting jobs' ids: filtered in the database, in the plan's order (or the sort asked for)."""
    jobs = filters.apply(Job.objects.filter(batching.planned(), status=Status.PENDING))
    if filters.sort == "position":
        ids = (i for i in jobs.values_list("id", flat=True) if i in the_plan.positions)
        return sorted(ids, key=the_plan.positions.__getitem__)
    return list(filters.ordered(jobs, ()).values_list("id", flat=True))


def pending_entries(ids: list[int], the_plan: Plan) -> list:
    """Queue entries of these waiting jobs (one page of them), loading only their rows."""
    rows = _with_related(Job.objects.all()).in_bulk(ids)
    return [_entry(rows[i], the_plan.positions.get(i), the_plan.estimates.get(i)) for i in ids if i in rows]


def held_jobs(filters: Filters) -> QuerySet[Job]:
    """Scheduled, blocked and paused jobs (and pending batch members, which wait with their batch),
    soonest start first."""
    jobs = filters.apply(
        Job.objects.filter(Q(status__in=HELD) | Q(~batching.planned(), status=Status.PENDING))
    )
    return filters.ordered(_with_related(jobs), ("start_after", "submitted_at", "id"))


def held_entries(jobs) -> list:
    """Held jobs' entries: a scheduled job's estimated start is its start time."""
    from scheduling.selectors import QueueEntry

    return [
        QueueEntry(job, None, job.start_after if job.status == Status.SCHEDULED else None) for job in jobs
    ]


def shows(filters: Filters, statuses) -> bool:
    """Whether a section holding these statuses is wanted by the status filter."""
    return not filters.status or bool(set(filters.status) & set(statuses))


# --- my jobs ---------------------------------------------------------------------------------------------


def my_jobs_page(user, filters: Filters, number, size: int) -> Page:
    """The user's jobs, filtered and sorted, running ones first (so they always open the first page)."""
    jobs = filters.apply(Job.objects.filter(owner=user).select_related("owner", "node", "team", "template"))
    active = Case(
        When(status__in=list(HOLDS_GPUS), then=Value(0)), default=Value(1), output_field=IntegerField()
    )
    keys = SORTS[filters.sort] or ("-submitted_at", "-id")
    return paginate(jobs.annotate(_active=active).order_by("_active", *keys), number, size)
