"""Bulk submission and sweeps (Slurm's job arrays): many jobs checked as one request, all or nothing,
inserted in one transaction under a Sweep that is watched, cancelled and depended on as one."""

import itertools
import math

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from accounts.permissions import can_act_on_sweep, team_of
from queueproject.refusals import status_of
from scheduling import fastinsert, services
from scheduling.models import Job, JobTemplate, Sweep
from scheduling.states import HOLDS_GPUS, TERMINAL, WAITING, Status
from scheduling.transitions import record_creations, transition_waiting

# Dependency rows one request may add (jobs × the jobs each waits for): a sweep of 1,000 waiting for
# another of 1,000 is a million rows, past any use.
MAX_DEPENDENCY_LINKS = 100_000
# Jobs cancelled per transaction: a short write each, so other writers (SQLite) never wait long.
CANCEL_CHUNK = 1000


class BulkRejected(Exception):
    """Some jobs of a bulk submission are invalid, so none was made (API: 400 with `errors`: the index
    of each invalid job, as a string, and its errors by field)."""

    def __init__(self, errors: dict[int, dict[str, list[str]]], status_code: int = 400):
        super().__init__(f"{len(errors)} invalid job(s)")
        self.errors = errors
        self.status_code = status_code  # a refusal's (queueproject.refusals) when all of them are

    def as_body(self) -> dict:
        return {"errors": {str(index): fields for index, fields in sorted(self.errors.items())}}


def check_size(count: int, field: str = "jobs") -> None:
    limit = settings.GPUQ_BULK_MAX_JOBS
    if count < 1:
        raise ValidationError({field: "at least one job"})
    if count > limit:
        raise ValidationError({field: f"{count} jobs; at most {limit} in one request (GPUQ_BULK_MAX_JOBS)"})


def parameter_sets(*, grid: dict | None = None, sets: list | None = None) -> list[dict]:
    """A sweep's parameter sets: `sets` as given, then every combination of `grid`'s values (a dict of
    name: list of values; the last name varies fastest, as in nested loops)."""
    grid, sets = grid or {}, sets or []
    if not grid and not sets:
        raise ValidationError({"sweep": 'give a "grid" of values or a list of parameter "sets"'})
    if not isinstance(sets, list) or not all(isinstance(s, dict) for s in sets):
        raise ValidationError({"sweep.sets": "a list of parameter objects"})
    if not isinstance(grid, dict):
        raise ValidationError({"sweep.grid": 'an object of name: list of values, e.g. {"lr": [0.1, 0.01]}'})
    for name, values in grid.items():
        if not isinstance(values, list) or not values:
            raise ValidationError({f"sweep.grid.{name}": "a non-empty list of values"})
    combinations = math.prod(len(values) for values in grid.values()) if grid else 0
    check_size(len(sets) + combinations, "sweep")
    product = (
        (dict(zip(grid, values, strict=True)) for values in itertools.product(*grid.values())) if grid else ()
    )
    return [*sets, *product]


def sweep_submit(
    *, user, specs: list[dict], name: str = "", template: JobTemplate | None = None
) -> tuple[Sweep, list[Job]]:
    """Check every job (each `specs` item holds job_submit's keyword arguments), then create them all
    under one new sweep, in one transaction with one tick requested, or create nothing: BulkRejected
    names each invalid job by its index; PermissionDenied (a job the user may not submit) names the
    first. Job i is named `NAME[i]`, NAME being its own name, else its template's or program's."""
    check_size(len(specs))
    lookups = services.Lookups(user)
    lookups.load(
        job_ids={i for spec in specs for i in spec.get("depends_on") or ()},
        sweep_ids={i for spec in specs for i in spec.get("depends_on_sweeps") or ()},
    )
    now = timezone.now()
    prepared, errors, statuses = [], {}, set()
    for index, spec in enumerate(specs):
        if spec.get("dry_run") or spec.get("no_wait"):
            field = "dry_run" if spec.get("dry_run") else "no_wait"
            errors[index] = {field: ["not for a bulk submission; submit this job alone"]}
            statuses.add(400)
            continue
        spec = {k: v for k, v in spec.items() if k not in ("dry_run", "no_wait")}
        try:
            prepared.append(services.job_prepare(user=user, lookups=lookups, now=now, **spec))
        except ValidationError as error:
            errors[index] = error.message_dict if hasattr(error, "error_dict") else {"detail": error.messages}
            statuses.add(status_of(error))
        except PermissionDenied as error:
            raise PermissionDenied(f"job {index}: {error}") from None
    if errors:
        raise BulkRejected(errors, 400 if 400 in statuses else min(statuses))
    links = sum(len(p.dependencies) for p in prepared)
    if links > MAX_DEPENDENCY_LINKS:
        raise ValidationError(
            {"depends_on": f"{links} dependencies in all; at most {MAX_DEPENDENCY_LINKS} in one request"}
        )
    jobs = [
        Job(
            **{**p.fields, "name": f"{p.fields['name'][:190]}[{index}]"},
            array_index=index,
            queue_order=now.timestamp(),  # FIFO within a priority, then by id: the sweep's own order
        )
        for index, p in enumerate(prepared)
    ]
    with transaction.atomic():
        sweep = Sweep.objects.create(
            owner=user,
            team=team_of(user),
            name=(name or (template.name if template else prepared[0].fields["name"]))[:200],
            template=template,
            size=len(jobs),
            submitted_at=now,
        )
        for job in jobs:
            job.sweep = sweep
        fastinsert.insert(jobs, ids=True)
        link = Job.depends_on.through
        fastinsert.insert_values(
            link,
            [
                {"from_job_id": job.pk, "to_job_id": dependency.pk}
                for job, p in zip(jobs, prepared, strict=True)
                for dependency in p.dependencies
            ],
        )
        record_creations(jobs, by=user, reasons=[p.reason for p in prepared])
    return sweep, jobs


def counts(sweep: Sweep) -> dict[str, int]:
    """How many of the sweep's jobs are in each status, by status name (one query)."""
    rows = Job.objects.filter(sweep=sweep).order_by().values_list("status").annotate(n=Count("id"))
    return dict(sorted(rows))


def sweep_cancel(*, sweep: Sweep, user, reason: str = "") -> int:
    """Cancel every unfinished job of the sweep: waiting ones a chunk per transaction in a few
    statements each (a short write: other writers on SQLite never wait long), dispatched and running
    ones one by one as job_cancel does (they are asked to stop; at most one per GPU). Returns how many
    were cancelled or asked to stop."""
    if not can_act_on_sweep(user, sweep):
        raise PermissionDenied("You can only cancel your own sweeps (leads: your team's).")
    why = reason or f"cancelled by {user} with sweep {sweep.pk}"
    unfinished = Job.objects.filter(sweep=sweep).exclude(status__in=TERMINAL).select_related("owner", "node")
    done, after = 0, 0
    while chunk := list(unfinished.filter(status__in=WAITING, pk__gt=after).order_by("pk")[:CANCEL_CHUNK]):
        done += len(transition_waiting(chunk, Status.CANCELLED, by=user, reason=why))
        after = chunk[-1].pk
    for job in unfinished.filter(status__in=HOLDS_GPUS).order_by("pk"):
        try:
            services.job_cancel(job=job, user=user, reason=why)
            done += 1
        except ValidationError:  # it ended meanwhile
            pass
    return done
