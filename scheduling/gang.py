"""Gang jobs: one job that runs one process on each of several nodes at once, as torchrun expects.

The planner places every part together (scheduling.gangplan); the tick opens one Attempt with one
AttemptPart per node and sends one task to each node's executor cluster (`run_part`). Rank 0 claims the
job (dispatched → running) and picks MASTER_PORT; the other ranks claim their part, wait for rank 0's
address and port, then start. Every part is an executor (scheduling.executor.Execution) with its own
process group, fence and heartbeat; each renews the attempt's heartbeat too, so the reaper leaves a gang
alone while any part lives. Each part watches the others: when one ended badly, or went silent for the
reaper's whole take-over time (its node was lost: its own fence stopped it a lease earlier), it stops its
own process and ends its part. The last part to end records the job's one outcome: completed when all
completed, else the first failure (retried by the retry policy as one job), a lost node as the reaper
would (back to the queue as attempt + 1, or failed once attempts are spent), or the stop that was asked.
"""

import json
import logging
import socket
import time
from dataclasses import asdict

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import Count, Q
from django.db.models.functions import Now
from django.utils import timezone
from django_q.tasks import async_task

from gpus.models import Allocation, Gpu, Node
from gpus.placement import Needs, could_ever_fit
from queueproject.refusals import Unprocessable
from scheduling import leases, procs
from scheduling.executor import Execution, Outcome, until_recorded
from scheduling.models import Attempt, AttemptPart, Job
from scheduling.outage import Outage, drop_connection
from scheduling.reaper import ago, next_after_loss
from scheduling.states import Status
from scheduling.stops import stopped_outcome
from scheduling.transitions import InvalidTransition, TransitionConflict, transition

log = logging.getLogger("gpuq.gang")

Parts = tuple[tuple[str, tuple[int, ...]], ...]
LOG_TAIL_BYTES = 4000


# --- submission -----------------------------------------------------------------------------------


def check_shape(nodes, gpus_per_node, gpu_count: int, *, explicit: bool) -> tuple[int, int]:
    """(nodes, GPUs in all) from the submit fields: `nodes` × `gpus_per_node`, or `gpu_count` spread
    evenly over `nodes`. Unprocessable (422: a rule across fields the API's schema cannot
    state) naming the field when they disagree."""
    nodes = nodes or 1
    if gpus_per_node is None:
        if not explicit:  # each node gets the template's (or the default) count
            return nodes, gpu_count * nodes
        if gpu_count % nodes:
            raise Unprocessable(
                {"gpu_count": f"must be a multiple of nodes ({nodes}), or give gpus_per_node"}
            )
        return nodes, gpu_count
    if explicit and gpu_count != nodes * gpus_per_node:
        raise Unprocessable(
            {"gpu_count": f"is nodes × gpus_per_node ({nodes * gpus_per_node}); give one or the other"}
        )
    return nodes, nodes * gpus_per_node


def check_fits(nodes: int, per_node: int, needs: Needs, device_ids, all_nodes) -> None:
    """A gang job must be able to run some day: `nodes` distinct nodes that could each take a part."""
    if device_ids:
        raise Unprocessable({"device_ids": "not for gang jobs (nodes > 1): each node picks its own GPUs"})
    able = sum(1 for node in all_nodes if could_ever_fit(per_node, [node], needs))
    if able < nodes:
        raise Unprocessable(
            {"nodes": f"only {able} node(s) could take {per_node} GPU(s) each; this job could never run"}
        )


# --- the snapshot and the tick --------------------------------------------------------------------


def running_parts() -> dict[int, tuple[tuple[str, int], ...]]:
    """Per running gang job, the GPUs it holds on each node (the planner gives them back per node)."""
    parts: dict[int, list[tuple[str, int]]] = {}
    rows = (
        Allocation.objects.active()
        .filter(job__nodes__gt=1)
        .values_list("job_id", "gpu__node__name")
        .annotate(n=Count("id"))
        .order_by("job_id", "gpu__node__name")
    )
    for job_id, node, count in rows:
        parts.setdefault(job_id, []).append((node, count))
    return {job_id: tuple(p) for job_id, p in parts.items()}


def gpus_of(parts: Parts) -> list[Gpu]:
    """The Gpu rows of every part, in one query."""
    wanted = Q(pk__in=[])
    for node, indices in parts:
        wanted |= Q(node__name=node, index__in=indices)
    return list(Gpu.objects.filter(wanted))


def open_parts(job: Job, token: str, parts: Parts) -> None:
    """Inside the dispatch's transaction: one part row per node under the attempt just opened."""
    attempt = Attempt.objects.get(job_id=job.pk, lease_token=token)
    nodes = dict(Node.objects.filter(name__in=[n for n, _ in parts]).values_list("name", "pk"))
    AttemptPart.objects.bulk_create(
        AttemptPart(attempt=attempt, rank=rank, node_id=nodes[node], gpu_indices=list(gpus))
        for rank, (node, gpus) in enumerate(parts)
    )


def enqueue(job: Job, token: str, parts: Parts) -> None:
    """After commit: one executor task per part, each on its node's cluster."""
    from gpus.models import queue_name_for

    for rank, (node, _) in enumerate(parts):
        async_task(
            "scheduling.gang.run_part",
            job.pk,
            token,
            rank,
            cluster=queue_name_for(node),
            task_name=f"job-{job.pk}-attempt-{job.attempt}-rank-{rank}",
            ack_failure=True,
        )


# --- the executor of one part -------------------------------------------------------------------


def _free_port() -> int:
    """A port free on this machine now, for rank 0's rendezvous (torchrun's store binds it)."""
    with socket.socket() as sock:
        sock.bind(("", 0))
        return sock.getsockname()[1]


def run_part(job_id: int, token: str, rank: int) -> str:
    """django-q2 entry point for one part of a gang job (scheduling.executor.run_job for the others)."""
    mine = AttemptPart.objects.filter(
        attempt__lease_token=token, attempt__ended_at__isnull=True, rank=rank, started_at__isnull=True
    )
    claimed = {"started_at": Now(), "heartbeat_at": Now(), "boot_id": procs.boot_id()}

    def claim():
        job = Job.objects.filter(pk=job_id, lease_token=token).first()
        if job is None:
            return None
        with transaction.atomic():
            if rank == 0:
                transition(
                    job,
                    Status.RUNNING,
                    token=token,
                    reason=f"executor started (rank 0 of {job.nodes})",
                    started_at=timezone.now(),
                    lease={"boot_id": procs.boot_id()},
                )
                claimed.update(address=settings.GPUQ_NODE_ADDRESS, port=_free_port())
            if mine.update(**claimed) != 1:
                raise TransitionConflict(f"job {job_id}: part {rank} is not waiting to start")
        return job, AttemptPart.objects.get(attempt__lease_token=token, rank=rank)

    try:
        claimed_part = until_recorded(f"job {job_id}: claim part {rank}", claim)
    except (TransitionConflict, InvalidTransition):
        log.info("job %s: part %s of attempt %s is not dispatched any more", job_id, rank, token[:8])
        return "skipped"
    if claimed_part is None:
        return "gone"
    job, part = claimed_part
    master = _rendezvous(job, token, part)
    if master is None:
        return "skipped"
    job.refresh_from_db()  # running now (rank 0 claimed it)
    return PartExecution(job, token, part, master).run()


def _rendezvous(job: Job, token: str, part: AttemptPart) -> tuple[str, int] | None:
    """Rank 0's address and port; the others wait for rank 0's claim, heartbeating their part. None when
    the attempt ended meanwhile (rank 0 never claimed: the reaper requeued the job)."""
    if part.rank == 0:
        return part.address, part.port
    outage = Outage(f"job {job.pk} part {part.rank}: rendezvous", log)
    while True:
        try:
            row = (
                AttemptPart.objects.filter(attempt__lease_token=token, rank=0)
                .values("address", "port", "attempt__ended_at")
                .first()
            )
            if row is None or row["attempt__ended_at"] is not None:
                return None
            if row["port"]:
                return row["address"], row["port"]
            AttemptPart.objects.filter(pk=part.pk, ended_at__isnull=True).update(heartbeat_at=Now())
            outage.recovered()
        except DatabaseError as error:  # its peers judge it by its heartbeat meanwhile
            outage.failed(error)
            drop_connection()
        time.sleep(settings.GPUQ_HEARTBEAT_SECONDS)


class PartExecution(Execution):
    """One part of a gang job: the executor, with the part's GPUs, rendezvous variables, own log (rank 0's
    is the job's; the others' tails go to their part rows), heartbeat on its part row, a watch on the
    other parts, and the last part recording."""

    def __init__(self, job: Job, token: str, part: AttemptPart, master: tuple[str, int]):
        super().__init__(job, token)
        self.part, self.master = part, master
        job.gpu_indices = part.gpu_indices  # this node's GPUs (the job's row names rank 0's)

    def _log_path(self):
        if self.part.rank == 0:
            return super()._log_path()
        return settings.GPUQ_LOG_DIR / f"job-{self.job.pk}.rank{self.part.rank}.log"

    def _log_jobs(self, batch: list[Job]) -> list[int]:
        return super()._log_jobs(batch) if self.part.rank == 0 else []  # ranks > 0 keep their own file

    def _prepare(self, batch: list[Job]) -> tuple[list[str], dict[str, str]]:
        argv, env = super()._prepare(batch)
        address, port = self.master
        rank, nodes = self.part.rank, self.job.nodes
        env.update(
            {
                "MASTER_ADDR": address,
                "MASTER_PORT": str(port),
                "WORLD_SIZE": str(nodes),  # one process per node; torchrun sets its workers' own
                "RANK": str(rank),
                "NODE_RANK": str(rank),
                "NNODES": str(nodes),
                "GPUQ_GANG_RANK": str(rank),
                # torchrun reads its options from these when no flag gives them: it works unchanged.
                "PET_NNODES": str(nodes),
                "PET_NODE_RANK": str(rank),
                "PET_MASTER_ADDR": address,
                "PET_MASTER_PORT": str(port),
                "PET_NPROC_PER_NODE": str(len(self.part.gpu_indices)),
            }
        )
        return argv, env

    def _heartbeat(self) -> bool:
        """Rank 0 renews the attempt as any job does; the others renew it without their process (the
        attempt's pid is rank 0's). Each part also renews its own row, with its process."""
        identity = dict(self.identity)
        with transaction.atomic():
            if self.part.rank == 0:
                held = super()._heartbeat()
            else:
                mine = Attempt.objects.filter(
                    lease_token=self.token, ended_at__isnull=True, job_id=self.job.pk
                )
                held = mine.update(heartbeat_at=Now()) == 1
                self.identity = {}
            if held:
                # Ranks > 0 ship no log: the end of theirs goes with each heartbeat (job page, API).
                tail = {"log_tail": self._log_tail()} if self.part.rank else {}
                AttemptPart.objects.filter(pk=self.part.pk, ended_at__isnull=True).update(
                    heartbeat_at=Now(), **identity, **tail
                )
        return held

    def _stop_row(self) -> dict | None:
        row = super()._stop_row()
        if row is not None and not row["stop_request"]:
            broken = self._broken()
            if broken:
                row = {**row, "broken": broken}
        return row

    def _others(self):
        return AttemptPart.objects.filter(attempt__lease_token=self.token).exclude(pk=self.part.pk)

    def _lost(self):
        """The other parts whose node is lost: silent for the reaper's take-over time (their fence
        stopped them a lease before), or never claimed within the dispatch timeout."""
        silent = Q(started_at__isnull=False, heartbeat_at__lt=ago(leases.current().reap_after))
        unclaimed = Q(
            started_at__isnull=True,
            attempt__dispatched_at__lt=ago(settings.GPUQ_DISPATCH_TIMEOUT_SECONDS),
        )
        return self._others().filter(silent | unclaimed, ended_at__isnull=True)

    def _broken(self) -> str:
        """Why this part must stop with its gang, or "" while every other part is running or done."""
        ended = self._others().filter(ended_at__isnull=False).exclude(outcome=Status.COMPLETED)
        row = ended.values("rank", "node__name", "reason").order_by("ended_at", "rank").first()
        if row:
            return f"stopped with its gang: rank {row['rank']} on {row['node__name']} ended ({row['reason']})"
        row = self._lost().values("rank", "node__name").order_by("rank").first()
        if row:
            return f"stopped with its gang: rank {row['rank']} on {row['node__name']} was lost"
        return ""

    def _record(self, outcome: Outcome) -> str:
        """End this part; the last part to end records the job's one outcome (see the module's doc)."""
        with transaction.atomic():
            # Locks the attempt (PostgreSQL; SQLite's IMMEDIATE transaction holds the write lock), so
            # two parts ending at once cannot both think the other is still running.
            attempt = Attempt.objects.select_for_update().filter(
                lease_token=self.token, ended_at__isnull=True
            )
            if not attempt.exists():
                raise TransitionConflict(f"job {self.job.pk}: attempt {self.job.attempt} is closed")
            AttemptPart.objects.filter(pk=self.part.pk, ended_at__isnull=True).update(
                ended_at=Now(),
                outcome=outcome.status,
                reason=outcome.reason[:500],
                exit_code=outcome.exit_code,
                result=json.loads(json.dumps(asdict(outcome), default=str)),
                log_tail=self._log_tail(),
            )
            for lost in self._lost():
                why = f"node {lost.node.name if lost.node_id else '?'} lost: part {lost.rank} went silent"
                lost_outcome = Outcome(Status.FAILED, why, error=why, cause="node_lost")
                AttemptPart.objects.filter(pk=lost.pk, ended_at__isnull=True).update(
                    ended_at=Now(), outcome=Status.FAILED, reason=why, result=asdict(lost_outcome)
                )
            if self._others().filter(ended_at__isnull=True).exists():
                return "part ended"  # the job runs on; the last part records it
            self.job.refresh_from_db()  # another part's claim or stop request changed it meanwhile
            final = self._gang_outcome()
            if final.cause == "node_lost":  # as the reaper does for a lost executor
                status, fields, why = next_after_loss(self.job, final.reason, fault=True)
                transition(self.job, status, token=self.token, reason=why, **fields)
                return str(status)
            return super()._record(final)

    def _gang_outcome(self) -> Outcome:
        """The job's outcome from its parts': a stop that was asked, else the first failure of a part
        (not one stopped with its gang), else completed."""
        parts = list(AttemptPart.objects.filter(attempt__lease_token=self.token).order_by("ended_at", "rank"))
        outcomes = [(p, Outcome(**{**p.result, "status": Status(p.result["status"])})) for p in parts]
        fresh = Job.objects.get(pk=self.job.pk)
        for _, o in outcomes:
            if o.status not in (Status.COMPLETED, Status.FAILED):  # cancel, pause, preempt
                status, fields = stopped_outcome(fresh, fresh.stop_request or "cancel")
                return Outcome(status, o.reason, exit_code=o.exit_code, by_id=o.by_id, fields=fields)
        failed = [(p, o) for p, o in outcomes if o.status == Status.FAILED]
        first = next(((p, o) for p, o in failed if o.cause != "gang"), failed[0] if failed else None)
        if first is None:
            return outcomes[0][1]  # all completed: rank 0's
        part, o = first
        where = f"rank {part.rank} on {part.node.name if part.node_id else '?'}"
        o.reason, o.error = f"{where}: {o.reason}"[:300], f"{where}: {o.error}"
        return o

    def _log_tail(self) -> str:
        """The end of this part's log, stored with the part (ranks > 0 ship no log of their own)."""
        try:
            with open(self._log_path(), "rb") as f:
                f.seek(0, 2)
                f.seek(max(0, f.tell() - LOG_TAIL_BYTES))
                return f.read().decode(errors="replace")
        except OSError:
            return ""
