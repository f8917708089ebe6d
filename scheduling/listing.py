"""Lists that scale: the filters, search, sort and paging of the queue and of "my jobs", applied in the
database, so a page reads one page of rows whatever the size of the queue."""

import dataclasses
import threading
from dataclasses import dataclass

from django.conf import settings
from django.core.paginator import Page, Paginator
from django.db.models import Case, IntegerField, Max, Q, QuerySet, Value, When

from queueproject.strict import whole_number
from scheduling import batching, planstore
from scheduling.models import Job, WaitReason
from scheduling.states import HOLDS_GPUS, TERMINAL, Status

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


def with_nul(params, *names: str) -> str | None:
    """The first of these query parameters that holds a NUL character (PostgreSQL cannot compare text
    with one in it), or None."""
    return next((name for name in names if "\x00" in params.get(name, "")), None)


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
        if name := with_nul(params, "q", "owner", "team", "template"):
            raise BadFilter(name, "must not contain a NUL character")
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
            is_id = whole_number(number) and len(number) <= 18  # within a bigint
            jobs = jobs.filter(text | Q(pk=int(number)) if is_id else text)
        return jobs

    def ordered(self, jobs: QuerySet[Job], default: tuple[str, ...]) -> QuerySet[Job]:
        return jobs.order_by(*(SORTS[self.sort] or default))


def page_size(params) -> int:
    """The page size asked for (`size`), within 1 and GPUQ_MAX_PAGE_SIZE; GPUQ_PAGE_SIZE without one."""
    raw = params.get("size", "")
    if not raw:
        return settings.GPUQ_PAGE_SIZE
    if not whole_number(raw) or int(raw) < 1:
        raise BadFilter("size", f"a whole number from 1 to {settings.GPUQ_MAX_PAGE_SIZE}")
    return min(int(raw), settings.GPUQ_MAX_PAGE_SIZE)


def paginate(items, number, size: int) -> Page:
    """One page of `items` (a queryset or a list); a page number past the end gives the last page."""
    return Paginator(items, size, allow_empty_first_page=True).get_page(number)


# --- the queue -----------------------------------------------------------------------------------------


Plan = planstore.Plan


def plan() -> Plan:
    """The queue's order and estimates as the last tick stored them (one query; no planning here): this
    read's own copy, which keeps what the read works out once (its `queue_version`)."""
    return dataclasses.replace(planstore.load())


def _entry(job: Job, position: int | None, estimate=None):
    """A queue entry; `estimate` is a waiting job's estimated start range (estimates.Estimate) or None."""
    from scheduling.selectors import QueueEntry, _range

    return QueueEntry(job, position, *_range(estimate))


def _with_related(jobs: QuerySet[Job]) -> QuerySet[Job]:
    return jobs.select_related("owner", "node", "team", "template")


def running(filters: Filters, the_plan: Plan | None = None) -> list:
    """Dispatched and running jobs (as many as there are GPUs at most), oldest start first. With
    `the_plan` and no filter, kept under the queue's version (`shared`)."""

    def read():
        jobs = filters.apply(Job.objects.filter(status__in=HOLDS_GPUS))
        return [_entry(job, None) for job in filters.ordered(_with_related(jobs), ("started_at", "id"))]

    if the_plan is None or filters.active:
        return read()
    return shared(("running", filters.sort), the_plan, read)


def pending_ids(filters: Filters, the_plan: Plan) -> list[int]:
    """The waiting jobs' ids: filtered in the database, in the plan's order (or the sort asked for)."""
    jobs = filters.apply(Job.objects.filter(batching.planned(), status=Status.PENDING))
    if filters.sort != "position":
        return list(filters.ordered(jobs, ()).values_list("id", flat=True))
    if filters.active or the_plan.computed_at is None:
        return _in_plan_order(jobs, the_plan)
    return list(_unfiltered_queue(jobs, the_plan))


def _in_plan_order(jobs: QuerySet[Job], the_plan: Plan) -> list[int]:
    # Jobs newer than the last tick (it is on its way) come last, oldest first.
    last = len(the_plan.positions) + 1
    return sorted(jobs.values_list("id", flat=True), key=lambda i: (the_plan.positions.get(i, last), i))


# What every open queue page reads again after each event, whatever its page: the whole queue's waiting
# ids in plan order, the held jobs' count, the header's counts. Each is kept in this process until the
# queue changes, under a version read before the value is computed: the commit position of the newest
# event (every status change, submission, reorder and policy change writes one, numbered as it commits),
# the newest job's id and the stored plan's time (a tick's dispatches are followed by a new plan). A
# change committed while a value is computed has a later position, so the next read computes again:
# never a stale answer after its event. The rows of a page (`shared`) are kept the same way, by the ids
# they show. A few dozen entries per process (the queue filtered other than by a page's ids is not
# kept); requests of several threads share them.
_MEMO_SIZE = 64
_memo: dict = {}
_memo_lock = threading.Lock()


def forget_cached() -> None:
    """Drop this process's cached plan and queue reads (tests: each starts from a new database)."""
    _memo.clear()
    _rows["kept"] = (None, {})
    planstore.forget()


def queue_version(the_plan: Plan) -> tuple:
    """What the memoized queue reads are valid for: the plan's time, the newest event's position and the
    newest job's id (a job created without an event, by a fixture or an import, is seen too); two
    index-only reads, once per read of the queue (`plan()`), before any value it memoizes."""
    from scheduling.relay import latest_seq

    if "version" not in the_plan.reading:
        the_plan.reading["version"] = (
            the_plan.computed_at,
            latest_seq(),
            Job.objects.aggregate(last=Max("id"))["last"],
        )
    return the_plan.reading["version"]


def memoized(name, version: tuple, compute):
    """`compute()`, or what it gave last for `name` under the same `version`."""
    hit = _memo.get(name)
    if hit is not None and hit[0] == version:
        return hit[1]
    value = compute()
    with _memo_lock:
        _memo.pop(name, None)
        _memo[name] = (version, value)
        while len(_memo) > _MEMO_SIZE:
            _memo.pop(next(iter(_memo)))
    return value


SHARED_ROWS = 100  # pages of more rows than this are read for their request alone (memory: 64 pages kept)


def shared(name, the_plan: Plan, read):
    """`read()` kept under the queue's version: the rows one page shows, read once per change for every
    open page that shows them, whoever asks (what each user may see of them and do with them is worked out
    per request). The values are shared between requests: nothing may change them."""
    return memoized(name, queue_version(the_plan), read)


# Rendered rows of the queue page (scheduling.templatetags.gpuq.queue_row), for one queue version at a time.
_ROWS_KEPT = 2000
_rows: dict = {"kept": (None, {})}  # (the queue version, {key: html}), replaced whole on a new version


def row_html(version: tuple, key: tuple, render) -> str:
    """`render()`, or what it gave for `key` under the same queue `version`: the many open pages that
    show a row after an event render it once. `key` must hold everything the row's HTML depends on."""
    kept_version, rows = _rows["kept"]
    if kept_version != version:
        rows = {}
        _rows["kept"] = (version, rows)
    html = rows.get(key)
    if html is None:
        html = render()
        if len(rows) < _ROWS_KEPT:
            rows[key] = html
    return html


def _unfiltered_queue(jobs: QuerySet[Job], the_plan: Plan) -> tuple[int, ...]:
    return memoized("queue", queue_version(the_plan), lambda: tuple(_in_plan_order(jobs, the_plan)))


class _Counted:
    """A queryset with a count already known: what a Paginator pages without counting again."""

    def __init__(self, jobs: QuerySet[Job], count: int):
        self.jobs, self._count = jobs, count

    def count(self) -> int:
        return self._count

    def __getitem__(self, index):
        return self.jobs[index]


def held_counted(filters: Filters, the_plan: Plan):
    """held_jobs(filters), its count memoized for the unfiltered queue (every open page's default)."""
    jobs = held_jobs(filters)
    if filters.active:
        return jobs
    return _Counted(jobs, memoized("held", queue_version(the_plan), jobs.count))  # whatever the sort


def pending_entries(ids: list[int], the_plan: Plan) -> list:
    """Queue entries of these waiting jobs (one page of them), loading only their rows; kept under the
    queue's version (`shared`), so the open pages that show the same page after an event read it once."""

    def read():
        rows = _with_related(Job.objects.all()).in_bulk(ids)
        return [
            _entry(rows[i], the_plan.positions.get(i), the_plan.estimates.get(i)) for i in ids if i in rows
        ]

    if len(ids) > SHARED_ROWS:
        return read()
    return shared(("pending", tuple(ids)), the_plan, read)


def position_of(job: Job) -> int | None:
    """A pending job's place at submission (1 starts next): behind every planned pending job of higher
    priority and those of its priority submitted before it, one COUNT whatever the queue's length. The
    next tick may move it (ageing, fair share, dependencies); `/queue/position/{id}` then gives the
    planned place. None for any other status and for a batch member, which waits with its batch."""
    if job.status != Status.PENDING or not batching.is_planned(job):
        return None
    ahead = Job.objects.filter(batching.planned(), status=Status.PENDING).filter(
        Q(priority__gt=job.priority) | Q(priority=job.priority, pk__lt=job.pk)
    )
    return ahead.count() + 1


def held_jobs(filters: Filters) -> QuerySet[Job]:
    """Scheduled, blocked and paused jobs (and pending batch members, which wait with their batch),
    soonest start first."""
    jobs = filters.apply(
        Job.objects.filter(Q(status__in=HELD) | Q(~batching.planned(), status=Status.PENDING))
    )
    return filters.ordered(_with_related(jobs), ("start_after", "submitted_at", "id"))


def held_entries(
    jobs, the_plan: Plan | None = None, filters: Filters | None = None, place: tuple = (), size: int = 0
) -> list:
    """Held jobs' entries: a scheduled job's estimated start is its start time. With `the_plan` and
    unfiltered `filters`, kept under the queue's version (`shared`) as the `size` rows at `place` (what
    names them among every caller's: ("page", n) on the page, ("window", offset) in the API)."""
    from scheduling.selectors import QueueEntry

    def read():
        return [
            QueueEntry(job, None, job.start_after if job.status == Status.SCHEDULED else None) for job in jobs
        ]

    if the_plan is None or filters is None or filters.active or size > SHARED_ROWS:
        return read()
    return shared(("held", filters.sort, *place, size), the_plan, read)


def completed_jobs(filters: Filters) -> QuerySet[Job]:
    """Finished jobs (completed, failed, cancelled, rejected), the last to finish first (or the sort
    asked for): the queue's `include_completed`."""
    jobs = filters.apply(Job.objects.filter(status__in=TERMINAL))
    return filters.ordered(_with_related(jobs), ("-finished_at", "-id"))


def completed_entries(jobs) -> list:
    from scheduling.selectors import QueueEntry

    return [QueueEntry(job, None) for job in jobs]


def flag(params, name: str) -> bool:
    """A yes/no query parameter: true/false, 1/0, yes/no (any case); absent is false."""
    raw = params.get(name, "").strip().lower()
    if raw in ("", "false", "0", "no"):
        return False
    if raw in ("true", "1", "yes"):
        return True
    raise BadFilter(name, "true or false")


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
