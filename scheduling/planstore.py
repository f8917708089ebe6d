"""The stored plan: each tick writes its queue order, estimated starts and reservations into one row, and
every read of the queue (API, pages, CLI, admin) reads that row instead of planning again."""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.conf import settings

from scheduling import first_estimates, planner
from scheduling.estimates import Estimate, estimate_starts
from scheduling.models import StoredPlan

_ROW = 1


@dataclass(frozen=True)
class Plan:
    """The queue's order and estimates as the last tick stored them."""

    positions: dict[int, int]  # waiting job id -> 1-based position
    estimates: dict = field(default_factory=dict)  # waiting job id -> Estimate
    computed_at: datetime | None = None  # None: no tick has run yet
    estimated_at: datetime | None = None  # when the estimates were computed (a tick does not always)
    # What one read of the queue worked out from this plan (scheduling/listing.py: its version), kept on
    # the read's own copy (listing.plan()), never on the plan this process shares between requests.
    reading: dict = field(default_factory=dict, init=False, compare=False, repr=False)


def save(plan: planner.Plan, snap: planner.Snapshot, now: datetime) -> None:
    """Store a tick's plan: the jobs it left waiting in order and, at most every GPUQ_ESTIMATE_SECONDS
    (a simulation of many plans), their estimated starts; estimates in between are the last ones."""
    gone = {s.job_id for s in plan.starts} | {f.job_id for f in plan.fails}
    order = [job_id for job_id in plan.order if job_id not in gone]
    reservations = [
        {"job": r.job_id, "node": r.node, "start": _ts(r.start), "gpus": r.gpu_count}
        | ({"nodes": list(r.nodes)} if r.nodes else {})  # a gang job: every node reserved
        for r in plan.reservations
    ]
    fields = {"computed_at": now, "order": order, "reservations": reservations}
    last = StoredPlan.objects.filter(pk=_ROW).values_list("estimated_at", flat=True).first()
    every = timedelta(seconds=settings.GPUQ_ESTIMATE_SECONDS)
    if last is None or now - last >= every or now < last:
        estimates = estimate_starts(snap, now)
        fields["estimates"] = {
            str(job_id): [_ts(e.start), _ts(e.latest)]
            for job_id, e in estimates.items()
            if job_id not in gone
        }
        fields["estimated_at"] = now
        first_estimates.record_first_estimates(
            {job_id: e.start for job_id, e in estimates.items() if job_id not in gone and e.start is not None}
        )
    if not StoredPlan.objects.filter(pk=_ROW).update(**fields):
        StoredPlan.objects.create(pk=_ROW, **fields)


# The last plan this process read: reads between two ticks (every open page after each event) reuse it.
_loaded = Plan({})


def forget() -> None:
    global _loaded
    _loaded = Plan({})


def load() -> Plan:
    """The last stored plan (one query while it is the one this process read last; two when a tick
    stored a new one); an empty one before the first tick."""
    global _loaded
    row = StoredPlan.objects.filter(pk=_ROW).values_list("computed_at", "estimated_at").first()
    if row is None:
        return Plan({})
    if (_loaded.computed_at, _loaded.estimated_at) == row:
        return _loaded
    row = (
        StoredPlan.objects.filter(pk=_ROW)
        .values_list("computed_at", "estimated_at", "order", "estimates")
        .first()
    )
    if row is None:  # gone in between (a test's flush)
        return Plan({})
    computed_at, estimated_at, order, estimates = row
    _loaded = Plan(
        {job_id: position for position, job_id in enumerate(order, start=1)},
        {int(k): Estimate(_when(start), _when(latest)) for k, (start, latest) in estimates.items()},
        computed_at,
        estimated_at,
    )
    return _loaded


def reservations() -> tuple[planner.Reservation, ...]:
    """The last stored plan's reservations (one query): the next plan keeps them (planner
    `Snapshot.previous_reservations`), so a reservation holds across ticks."""
    stored = StoredPlan.objects.filter(pk=_ROW).values_list("reservations", flat=True).first() or []
    return tuple(
        planner.Reservation(r["job"], r["node"], _when(r["start"]), r["gpus"], tuple(r.get("nodes", ())))
        for r in stored
    )


def _ts(when: datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def _when(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz=UTC)
