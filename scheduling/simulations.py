"""What-if simulations for operators: read the input (history or a trace, policy sets), run the simulator
(scheduling.simulator) against strict FIFO, plain backfill and the present policies, store the table.

The API, CLI and admin all call `simulation_create`. A small run is done in the request; a bigger one
(more than GPUQ_SIMULATION_INLINE_JOBS jobs × policy sets) is a django-q2 task on a node's cluster that
writes its progress to the row, which callers poll.
"""

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django_q.tasks import async_task

from queueproject.refusals import NotNow, Unprocessable
from scheduling import policies, simulator, traces
from scheduling.models import PolicyType, Simulation

log = logging.getLogger("gpuq.simulations")

# The policies a replay models; the others (quotas, approvals, preemption, …) act on things a trace has not.
SIMULATED = (
    PolicyType.CONCURRENCY,
    PolicyType.FAIR_SHARE,
    PolicyType.AGEING,
    PolicyType.EXPIRY,
    PolicyType.BACKFILL,
    PolicyType.SERIAL,
    PolicyType.ORDERING,
)
BASELINES = {"strict FIFO": {}, "backfill": {PolicyType.BACKFILL.value: {}}}
PRESENT = "present"
MAX_SETS = 8
MAX_NODES = 1000
MAX_NAME = 60
TASK = "scheduling.simulations.simulation_run"


def check_policy_sets(raw) -> dict[str, dict]:
    """Proposed policy sets, `{name: {policy type: config}}`, each config checked as the policy's own
    (scheduling.policies); raises ValidationError under `policies`."""
    if not isinstance(raw, dict):
        raise ValidationError(
            {"policies": 'must be an object of named policy sets: {"name": {"backfill": {}}}'}
        )
    if len(raw) > MAX_SETS:
        raise ValidationError({"policies": f"at most {MAX_SETS} policy sets"})
    checked = {}
    for name, configs in raw.items():
        if not name or len(name) > MAX_NAME or name in BASELINES or name == PRESENT or "\x00" in name:
            raise ValidationError(
                {"policies": f"{name!r}: a name of 1 to {MAX_NAME} characters, not one of the baselines"}
            )
        if not isinstance(configs, dict):
            raise ValidationError({"policies": f"{name}: must be an object of policy type -> config"})
        checked[name] = {}
        for policy_type, config in configs.items():
            if policy_type not in SIMULATED:
                raise ValidationError(
                    {"policies": f"{name}: {policy_type!r} is not simulated; use {', '.join(SIMULATED)}"}
                )
            try:
                policies.validate_config(policy_type, config)
            except ValidationError as error:
                raise ValidationError(
                    {"policies": f"{name}: {policy_type}: {'; '.join(error.messages)}"}
                ) from None
            checked[name][policy_type] = config
    return checked


def setup_for(configs: dict[str, dict]) -> simulator.Setup:
    """The simulator's view of a policy set (defaults filled in, as enabled policies get them)."""
    merged = {t: policies.validate_config(t, c) for t, c in configs.items()}
    half_life = merged.get(PolicyType.FAIR_SHARE, {}).get("half_life_hours", 24) * 3600
    return simulator.Setup(policies.to_planner(merged), half_life)


def present_configs() -> tuple[dict[str, dict], list[str]]:
    """The enabled policies the simulator models, and the enabled ones it leaves out."""
    enabled = policies.enabled_configs()
    kept = {t: c for t, c in enabled.items() if t in SIMULATED}
    return kept, sorted(t for t in enabled if t not in SIMULATED)


def registered_nodes() -> list[int]:
    """GPUs per registered node (the cluster replayed when the caller names none)."""
    from django.db.models import Count

    from gpus.models import Node

    counts = (
        Node.objects.annotate(n=Count("gpus")).filter(n__gt=0).order_by("name").values_list("n", flat=True)
    )
    return list(counts[:MAX_NODES])


def check_nodes(raw) -> list[int]:
    if not isinstance(raw, list) or not raw or len(raw) > MAX_NODES:
        raise ValidationError({"nodes": f"a list of 1 to {MAX_NODES} GPU counts, one per node"})
    if any(type(n) is not int or not 1 <= n <= 1024 for n in raw):
        raise ValidationError({"nodes": "each node's GPU count is an integer from 1 to 1024"})
    return raw


def simulation_create(
    *,
    user,
    policy_sets: dict,
    days: int | None = None,
    trace: str | None = None,
    trace_name: str = "trace",
    nodes: list[int] | None = None,
    now: datetime | None = None,
) -> Simulation:
    """Check the input (raises ValidationError naming the field), store the run, and do it now when it
    is small, else hand it to a django-q2 task. Exactly one of `days` and `trace`."""
    if (days is None) == (trace is None):
        raise ValidationError({"days": "give either days (history) or trace (CSV), not both"})
    if days is not None and (type(days) is not int or not 1 <= days <= settings.GPUQ_SIMULATION_MAX_DAYS):
        raise ValidationError({"days": f"an integer from 1 to {settings.GPUQ_SIMULATION_MAX_DAYS}"})
    # What the API's schema cannot say (the policies' own rules, the trace's content, the state of the
    # cluster and of the history) is a 422 or a 409 there, not a 400 (queueproject.refusals).
    try:
        sets = check_policy_sets(policy_sets)
        nodes = check_nodes(nodes) if nodes is not None else registered_nodes()
    except ValidationError as error:
        raise Unprocessable(
            error.message_dict if hasattr(error, "error_dict") else {"policies": error.messages}
        ) from None
    if not nodes:
        raise NotNow({"nodes": "no node is registered: give nodes, e.g. [8, 8]"})
    limit = settings.GPUQ_SIMULATION_MAX_JOBS
    now = now or timezone.now()
    if trace is not None:
        try:
            jobs, _ = traces.parse_csv(trace, max_jobs=limit)
        except traces.TraceError as error:
            raise Unprocessable({"trace": str(error)}) from None
        if not jobs:
            raise Unprocessable({"trace": "no jobs: the CSV has a header only"})
        source = trace_name[:200] or "trace"
    else:
        jobs, _ = traces.from_history(days, now=now, max_jobs=limit)
        if not jobs:
            raise NotNow({"days": f"no job ran and finished in the last {days} day(s)"})
        source = f"last {days} day(s) of history"
    sim = Simulation.objects.create(
        created_by=user,
        created_at=now,
        source=source,
        days=days,
        trace=trace or "",
        policy_sets={"nodes": nodes, "sets": list(sets.items())},  # pairs: a JSONB object loses the order
    )
    if len(jobs) * (len(sets) + len(BASELINES) + 1) <= settings.GPUQ_SIMULATION_INLINE_JOBS:
        simulation_run(sim.pk, now=now)
        sim.refresh_from_db()
    else:
        cluster = _cluster()
        transaction.on_commit(
            lambda: async_task(
                TASK, sim.pk, cluster=cluster, task_name=f"simulation-{sim.pk}", ack_failure=True
            )
        )
    return sim


def _cluster() -> str | None:
    """An online node's queue (the local node's first), where the task runs; None: django-q2's default."""
    from gpus.models import Node, NodeStatus

    node = Node.objects.filter(status=NodeStatus.ONLINE).order_by("-local", "name").first()
    return node.queue_name if node is not None else None


def simulation_run(simulation_id: int, *, now: datetime | None = None) -> None:
    """Run a stored simulation (the task): read its jobs, replay every set, store the table."""
    claimed = Simulation.objects.filter(pk=simulation_id, status=Simulation.Status.QUEUED).update(
        status=Simulation.Status.RUNNING
    )
    if not claimed:
        return  # done already, or another worker has it
    sim = Simulation.objects.get(pk=simulation_id)
    try:
        result = _run(sim, now or sim.created_at)
    except Exception as error:  # a failed run is recorded on its row, never retried
        log.exception("simulation %s failed", simulation_id)
        Simulation.objects.filter(pk=simulation_id).update(
            status=Simulation.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now(), trace=""
        )
        return
    Simulation.objects.filter(pk=simulation_id).update(
        status=Simulation.Status.DONE, progress=1.0, result=result, finished_at=timezone.now(), trace=""
    )


def _run(sim: Simulation, now: datetime) -> dict:
    limit = settings.GPUQ_SIMULATION_MAX_JOBS
    if sim.days is not None:
        jobs, epoch = traces.from_history(sim.days, now=now, max_jobs=limit)
    else:
        jobs, epoch = traces.parse_csv(sim.trace, max_jobs=limit)
    present, ignored = present_configs()
    named = {**BASELINES, PRESENT: present, **dict(sim.policy_sets["sets"])}
    nodes = [(f"node{i:03d}", n) for i, n in enumerate(sim.policy_sets["nodes"])]
    last = [0.0]

    def progress(fraction: float) -> None:
        if fraction - last[0] >= 0.02 or fraction >= 1.0:
            last[0] = fraction
            Simulation.objects.filter(pk=sim.pk).update(progress=min(fraction, 0.99))

    started = time.perf_counter()
    figures = simulator.compare(
        jobs,
        {name: setup_for(configs) for name, configs in named.items()},
        nodes,
        epoch=epoch or simulator.EPOCH,
        progress=progress,
    )
    sets = {name: {"policies": named[name], **figures[name]} for name in named}
    return {
        "jobs": len(jobs),
        "nodes": sim.policy_sets["nodes"],
        "seconds": round(time.perf_counter() - started, 3),
        "ignored_present_policies": ignored,
        "table": comparison_rows(figures),
        "sets": sets,
    }


def comparison_rows(sets: dict[str, dict]) -> list[dict]:
    """The comparison table that the API (`result.table`), CLI, admin and benchmark show: one row per
    policy set; waits in minutes, per GPU-count class as "mean/p95/max" ("-": no such jobs)."""
    rows = []
    for name, figures in sets.items():
        row = {
            "set": name,
            "utilization": round(figures["utilization"] * 100, 1),
            "mean_wait_min": round(figures["wait"]["mean"] / 60, 1),
            "p95_wait_min": round(figures["wait"]["p95"] / 60, 1),
            "max_wait_min": round(figures["wait"]["max"] / 60, 1),
            "jain": round(figures["jain"], 3),
            "out_of_order": figures["out_of_order"],
        }
        for cls, st in figures["wait_by_gpus"].items():
            row[f"gpus_{cls}"] = (
                f"{st['mean'] / 60:.1f}/{st['p95'] / 60:.1f}/{st['max'] / 60:.0f}" if st["jobs"] else "-"
            )
        rows.append(row)
    return rows


TABLE_COLUMNS = [
    "set",
    "utilization",
    "mean_wait_min",
    "p95_wait_min",
    "max_wait_min",
    "jain",
    "out_of_order",
    *(f"gpus_{name}" for name, _, _ in simulator.CLASSES),
]


def format_table(rows: list[dict]) -> str:
    """comparison_rows as aligned plain text."""
    table = [TABLE_COLUMNS] + [[str(row[c]) for c in TABLE_COLUMNS] for row in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(TABLE_COLUMNS))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in table
    )


def simulations_prune(*, now: datetime) -> int:
    """Remove simulations older than GPUQ_SIMULATION_KEEP_DAYS (the daily retention run)."""
    cutoff = now - timedelta(days=settings.GPUQ_SIMULATION_KEEP_DAYS)
    return Simulation.objects.filter(created_at__lt=cutoff).delete()[0]
