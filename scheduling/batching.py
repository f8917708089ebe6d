"""Batching (seed 003): waiting jobs of a batchable template with the same batch key, arriving within the
template's window, run together as one process on the same GPUs, up to the template's maximum size.

A batchable job is submitted `collecting`. Each tick, a group whose first job has waited out the window
(or that is full) is formed: its first job in queue order becomes the `leader`, the others its `member`s.
The planner sees the leader alone; when it is dispatched its members ride along (no GPUs of their own).
The executor runs the template's batch argv with a JSON manifest of the members; each member writes its
own result file. Exit 0: each member ends by its own result. Any other end of the batch: every member
(the leader too) goes back to the queue as a new attempt to run alone, with its own argv.
"""

import hashlib
import json
import os
from datetime import datetime, timedelta
from pathlib import Path

from django.db.models import Q

from scheduling.models import Job, JobTemplate, WaitReason
from scheduling.states import HOLDS_GPUS, Status
from scheduling.transitions import InvalidTransition, TransitionConflict, transition

COLLECTING, LEADER, MEMBER = "collecting", "leader", "member"
# A member whose leader left these statuses (cancelled, paused…) is free to batch again.
_LEADER_ALIVE = (Status.PENDING, *HOLDS_GPUS)


def batch_key(template: JobTemplate, fields: dict) -> str:
    """Jobs batch only with jobs that could share their GPUs and process: same template, owner, key
    parameters, resources, placement needs, environment and time limit."""
    params = fields["params"]
    same = {
        "template": template.pk,
        "owner": fields["owner"].pk,
        "params": {name: params.get(name) for name in template.batch_key_params},
        "gpus": fields["gpu_count"],
        "needs": [
            fields[f] for f in ("min_gpu_memory_mb", "gpu_model", "device_ids", "node_labels", "target")
        ],
        "env": fields["env"],
        "time_limit": fields["time_limit_seconds"],
    }
    return hashlib.sha256(json.dumps(same, sort_keys=True, default=str).encode()).hexdigest()[:32]


def form(now: datetime) -> None:
    """Free members of departed leaders; form the batches that are ready; tell the rest why they wait.
    Runs inside the tick (under its lock), before the planner; every tick passes here before it can
    start a job, so a queue with no batching costs one query, and nothing is written unless needed (on
    SQLite an UPDATE takes the write lock even when it changes no row)."""
    if not Job.objects.filter(
        status__in=(Status.PENDING, Status.DISPATCHED), batch_role__in=(MEMBER, COLLECTING)
    ).exists():
        return
    orphans = Job.objects.filter(status=Status.PENDING, batch_role=MEMBER).exclude(
        batch_leader__status__in=_LEADER_ALIVE
    )
    if orphans.exists():
        orphans.update(batch_role=COLLECTING, batch_leader=None)
    # Dispatched with a leader that was cancelled or requeued before it ran: back to the queue.
    for member in Job.objects.filter(status=Status.DISPATCHED, batch_role=MEMBER).exclude(
        batch_leader__status__in=HOLDS_GPUS
    ):
        try:
            transition(
                member,
                Status.PENDING,
                reason=f"the leader of its batch, job {member.batch_leader_id}, did not run",
                batch_role=COLLECTING,
                batch_leader=None,
                lease_token="",
            )
        except TransitionConflict:
            pass
    groups: dict[str, list[Job]] = {}
    collecting = (
        Job.objects.filter(status=Status.PENDING, batch_role=COLLECTING)
        .select_related("template")
        .order_by("-priority", "queue_order", "id")
    )
    for job in collecting:
        groups.setdefault(job.batch_key, []).append(job)
    for jobs in groups.values():
        template = jobs[0].template
        size, window = template.batch_max_size, timedelta(seconds=template.batch_window_seconds)
        while jobs:
            first_arrival = min(job.submitted_at for job in jobs)
            if len(jobs) < size and first_arrival + window > now:
                Job.objects.filter(pk__in=[j.pk for j in jobs]).update(
                    wait_reason=WaitReason.BATCHING,
                    wait_detail=f"collecting a batch of up to {size} until {first_arrival + window:%H:%M:%S} UTC",
                )
                break
            batch, jobs = jobs[:size], jobs[size:]
            leader, members = batch[0], batch[1:]
            Job.objects.filter(pk=leader.pk).update(
                batch_role=LEADER if members else "", wait_reason=WaitReason.NONE, wait_detail=""
            )
            Job.objects.filter(pk__in=[m.pk for m in members]).update(
                batch_role=MEMBER,
                batch_leader=leader,
                wait_reason=WaitReason.BATCH,
                wait_detail=f"runs in the batch of job {leader.pk}",
            )


def planned() -> Q:
    """Pending jobs the planner considers: not those collecting a batch or riding in one."""
    return ~Q(batch_role__in=(COLLECTING, MEMBER))


def is_planned(job: Job) -> bool:
    """`planned()` for one job in hand."""
    return job.batch_role not in (COLLECTING, MEMBER)


def dispatch_members(leader: Job, **fields) -> None:
    """The leader was dispatched: its pending members go with it, on its GPUs (allocated to the leader)."""
    for member in Job.objects.filter(batch_leader=leader, batch_role=MEMBER, status=Status.PENDING):
        try:
            transition(member, Status.DISPATCHED, reason=f"in the batch of job {leader.pk}", **fields)
        except TransitionConflict:
            pass


def start_members(leader: Job, token: str, now: datetime) -> list[Job]:
    """Move the leader's dispatched members to running; those that moved away (cancelled) are left out."""
    started = []
    members = Job.objects.filter(batch_leader=leader, batch_role=MEMBER, status=Status.DISPATCHED)
    for member in members.order_by("-priority", "queue_order", "id"):
        try:
            transition(
                member,
                Status.RUNNING,
                token=token,
                reason=f"running in the batch of job {leader.pk}",
                started_at=now,
            )
            started.append(member)
        except (TransitionConflict, InvalidTransition):
            pass
    return started


def write_manifest(leader: Job, jobs: list[Job], job_dir, path: Path) -> None:
    manifest = {
        "batch": leader.pk,
        "jobs": [
            {
                "id": job.pk,
                "params": job.params,
                "argv": job.argv,
                "result_file": str(job_dir(job.pk) / "result.json"),
            }
            for job in jobs
        ],
    }
    # The folder is the job's: never follow (nor overwrite through) a link a job left there.
    path.unlink(missing_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(json.dumps(manifest, indent=2))


def batch_argv(leader: Job, manifest: Path) -> list[str]:
    from scheduling.templating import render_argv

    template = leader.template
    values = {name: leader.params.get(name) for name in template.batch_key_params}
    return render_argv(template.batch_argv_template, {}, {**values, "manifest": str(manifest)})


def member_result(raw: bytes | None) -> tuple[Status, str, int | None]:
    """A member's own outcome from the result file the batch wrote for it (its bytes, None if absent)."""
    try:
        result = json.loads(raw) if raw is not None else None
    except ValueError:
        result = None
    if result is None:
        return Status.FAILED, "the batch wrote no result for this job", None
    if not isinstance(result, dict):
        return Status.FAILED, "the batch's result for this job is not a JSON object", None
    if result.get("status") == "completed":
        return Status.COMPLETED, "", 0
    code = result.get("exit_code")
    return (
        Status.FAILED,
        str(result.get("error") or "failed in the batch")[:2000],
        code if isinstance(code, int) else 1,
    )


def alone(job: Job) -> dict:
    """Fields that send a job of a failed batch back to the queue, as a new attempt that runs alone."""
    return {
        "attempt": job.attempt + 1,
        "started_at": None,
        "lease_token": "",
        "batch_role": "",
        "batch_leader": None,
    }
