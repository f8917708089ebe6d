"""The executor: the django-q2 task that runs one attempt of a job on its node's GPUs.

It claims the attempt by compare-and-set (dispatched → running, fenced by the attempt's lease token),
so a duplicate delivery runs nothing. The job's argv runs without a shell in its own process group,
with an allow-listed environment, as the Unix account run-as chooses (scheduling/runas.py), in folders
that account owns; its log stays the server's. A monitor loop heartbeats, reads progress, honours cancel requests and
the time limit, and kills the child's group if the lease is lost. The outcome is recorded by one
transition that also releases the GPUs and requests the next tick.
"""

import json
import logging
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.utils import timezone

from scheduling import batching, events, logship, policies, procs, runas
from scheduling.models import Job, StopRequest
from scheduling.states import Status
from scheduling.stops import stopped_outcome
from scheduling.transitions import InvalidTransition, TransitionConflict, transition

log = logging.getLogger("gpuq.executor")


def job_dir(job_id: int) -> Path:
    return settings.GPUQ_JOBS_DIR / str(job_id)


def checkpoint_dir(job_id: int) -> Path:
    """Kept across attempts (and, on shared storage, across nodes) so a requeued job can resume."""
    return settings.GPUQ_CHECKPOINT_ROOT / str(job_id)


def job_environment(job: Job) -> dict[str, str]:
    """The child's environment: an allow-list of the parent's, the job's own, then gpuq's variables.

    Nothing else of the parent passes, so the server's secrets (SECRET_KEY, DATABASE_URL) never do.
    """
    env = {name: os.environ[name] for name in settings.GPUQ_JOB_ENV_PASSTHROUGH if name in os.environ}
    env.update({str(k): str(v) for k, v in (job.env or {}).items()})
    env.update(
        {
            # NVML numbers GPUs in PCI order; CUDA's default order differs: make the indices agree.
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "CUDA_VISIBLE_DEVICES": ",".join(str(i) for i in job.gpu_indices),
            "GPUQ_JOB_ID": str(job.pk),
            "GPUQ_ATTEMPT": str(job.attempt),
            "GPUQ_PROGRESS_FILE": str(job_dir(job.pk) / "progress.json"),
            "GPUQ_CHECKPOINT_DIR": str(checkpoint_dir(job.pk)),
            "PYTHONUNBUFFERED": env.get("PYTHONUNBUFFERED", "1"),
        }
    )
    return env


@dataclass
class Outcome:
    status: Status
    reason: str
    exit_code: int | None = None
    error: str = ""
    by_id: int | None = None  # the user who asked for this outcome (cancel, pause)
    cause: str = ""  # for a failure that may retry: exit_code, time_limit or stalled
    fields: dict = field(default_factory=dict)  # more fields the outcome sets (a new attempt after a pause)


def run_job(job_id: int, token: str) -> str:
    """django-q2 entry point. Returns a short word for django-q2's task record."""
    job = Job.objects.filter(pk=job_id).first()
    if job is None:
        return "gone"
    now = timezone.now()
    try:
        transition(
            job,
            Status.RUNNING,
            token=token,
            reason="executor started",
            started_at=now,
            heartbeat_at=now,
            boot_id=procs.boot_id(),
        )
    except (TransitionConflict, InvalidTransition):
        log.info("job %s: attempt token %s is not dispatched any more; nothing to run", job_id, token[:8])
        return "skipped"
    members = batching.start_members(job, token, now) if job.batch_role == batching.LEADER else []
    return Execution(job, token, members).run()


class Execution:
    def __init__(self, job: Job, token: str, members: list[Job] = ()):
        self.job = job
        self.token = token
        self.members = list(members)  # a batch: the leader's companions, run by the same process
        self.lease_lost = False
        self.progress = job.progress
        self.shipper: logship.LogShipper | None = None
        self.account: runas.Account | None = None  # the Unix account the job runs as

    def run(self) -> str:
        job = self.job
        runas.prepare_roots()
        log_path = settings.GPUQ_LOG_DIR / f"job-{job.pk}.log"
        batch = [job, *self.members]
        Job.objects.filter(pk__in=[j.pk for j in batch], lease_token=self.token).update(
            log_path=str(log_path)
        )
        # The log stays the server's (0600): the job writes through the descriptor it inherits, and no
        # other job can read it.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.fchmod(log_fd, 0o600)
        # The job's output goes to the database as it is written (the API reads it with no shared disk).
        self.shipper = logship.LogShipper(log_path, [j.pk for j in batch], job.attempt)
        with open(log_fd, "ab", buffering=0) as log_file:
            try:
                self.account = runas.job_account(job.owner)
                for root in (settings.GPUQ_JOBS_DIR, settings.GPUQ_CHECKPOINT_ROOT):
                    runas.check_reachable(root, self.account)
            except runas.RunAsError as error:
                log_file.write(f"=== gpuq: {error} ===\n".encode())
                return self._finish(Outcome(Status.FAILED, "run-as", error=str(error)))
            try:
                argv, env = self._prepare(batch)
            except OSError as error:
                log_file.write(f"=== gpuq: could not prepare its folders: {error} ===\n".encode())
                return self._finish(
                    Outcome(Status.FAILED, "could not start", error=f"could not start: {error}")
                )
            members = f" with batch members {[m.pk for m in self.members]}" if self.members else ""
            log_file.write(
                f"=== gpuq: attempt {job.attempt} on GPU {job.gpu_indices}{members} ===\n".encode()
            )
            try:
                if job.template_id and not os.path.isabs(argv[0]):  # else the job's PATH would choose it
                    raise OSError(f"the template's program {argv[0]!r} is not an absolute path")
                child = subprocess.Popen(
                    argv,
                    stdin=subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    env=env,
                    cwd=job_dir(job.pk),
                    start_new_session=True,  # own process group: signals reach the job's children too
                    preexec_fn=procs.die_with_parent,
                    close_fds=True,
                    **self.account.popen_kwargs(),
                )
            except (OSError, ValueError) as error:  # ValueError: a NUL byte in argv or env
                log_file.write(f"=== gpuq: could not start: {error} ===\n".encode())
                return self._finish(
                    Outcome(Status.FAILED, "could not start", error=f"could not start: {error}")
                )
            try:
                Job.objects.filter(pk=job.pk, lease_token=self.token).update(
                    pid=child.pid, pid_start_time=procs.start_time(child.pid)
                )
                outcome = self._monitor(child, log_file)
            finally:
                # Whatever happened, leave no process of this job behind (graceful stops came earlier).
                procs.signal_group(child.pid, signal.SIGKILL)
                child.wait()
            log_file.write(f"=== gpuq: {outcome.status} ({outcome.reason}) ===\n".encode())
        return self._finish(outcome)

    def _prepare(self, batch: list[Job]) -> tuple[list[str], dict[str, str]]:
        """The job's folders (its account's, 0700), its argv and environment (a batch: its manifest)."""
        job, account = self.job, self.account
        runas.prepare_job_folder(job_dir(job.pk), account)
        runas.prepare_job_folder(checkpoint_dir(job.pk), account)
        argv, env = job.argv, {**job_environment(job), **account.environment()}
        if self.members:
            for member in self.members:  # the batch writes each member's result file there
                runas.prepare_job_folder(job_dir(member.pk), account)
            manifest = job_dir(job.pk) / "batch.json"
            batching.write_manifest(job, batch, job_dir, manifest)
            runas.hand_over(manifest, account)
            argv, env["GPUQ_BATCH_MANIFEST"] = batching.batch_argv(job, manifest), str(manifest)
        return argv, env

    def _monitor(self, child: subprocess.Popen, log_file) -> Outcome:
        job = self.job
        grace = settings.GPUQ_KILL_GRACE_SECONDS
        stall = policies.stall_timeout(policies.enabled_configs(), job.stall_timeout_seconds)
        activity, last_activity = self._activity(log_file), time.monotonic()
        started = time.monotonic()
        next_heartbeat = started + settings.GPUQ_HEARTBEAT_SECONDS
        next_check = started + settings.GPUQ_CANCEL_POLL_SECONDS
        last_contact = started
        while True:
            code = child.poll()
            if code is not None:
                if code == 0:
                    return Outcome(Status.COMPLETED, "exit code 0", exit_code=0)
                return Outcome(
                    Status.FAILED,
                    f"exit code {code}",
                    exit_code=code,
                    error=f"exit code {code}",
                    cause="exit_code",
                )
            now = time.monotonic()
            if job.time_limit_seconds and now - started > job.time_limit_seconds:
                procs.stop_group(child.pid, grace, poll=child.poll)
                return Outcome(
                    Status.FAILED,
                    "time_limit",
                    exit_code=child.poll(),
                    error=f"time limit of {job.time_limit_seconds} s reached",
                    cause="time_limit",
                )
            try:
                if now >= next_check:
                    next_check = now + settings.GPUQ_CANCEL_POLL_SECONDS
                    if stall:
                        seen = self._activity(log_file)
                        if seen != activity:
                            activity, last_activity = seen, now
                        elif now - last_activity > stall:
                            procs.stop_group(child.pid, grace, poll=child.poll)
                            return Outcome(
                                Status.FAILED,
                                "stalled",
                                exit_code=child.poll(),
                                error=f"watchdog: no output or progress for {stall:g} s",
                                cause="stalled",
                            )
                    row = (
                        Job.objects.filter(pk=job.pk)
                        .values("lease_token", "status", "stop_request", "stop_requested_by", "stop_reason")
                        .first()
                    )
                    if row is None or row["lease_token"] != self.token or row["status"] != Status.RUNNING:
                        return self._lose_lease(child)
                    if row["stop_request"]:
                        procs.stop_group(child.pid, grace, poll=child.poll)
                        status, fields = stopped_outcome(job, row["stop_request"])
                        return Outcome(
                            status,
                            row["stop_reason"] or str(row["stop_request"]),
                            exit_code=child.poll(),
                            by_id=row["stop_requested_by"],
                            fields=fields,
                        )
                if now >= next_heartbeat:
                    next_heartbeat = now + settings.GPUQ_HEARTBEAT_SECONDS
                    if not self._heartbeat():
                        return self._lose_lease(child)
                    last_contact = now
                    self.shipper.ship()
            except DatabaseError as error:
                # Self-fencing: after a whole lease without reaching the database, the reaper may
                # already have given the job to another attempt, so this one must stop.
                log.warning("job %s: database unreachable (%s)", job.pk, error)
                if now - last_contact > settings.GPUQ_LEASE_SECONDS:
                    return self._lose_lease(child)
            time.sleep(0.05)

    def _activity(self, log_file) -> tuple:
        """What changes when the job shows signs of life: its log's size and its progress file."""
        try:
            progress = (job_dir(self.job.pk) / "progress.json").lstat()
            progress_mark = (progress.st_mtime_ns, progress.st_size)
        except OSError:
            progress_mark = None
        return os.fstat(log_file.fileno()).st_size, progress_mark

    def _heartbeat(self) -> bool:
        """Renew the lease; False when this attempt no longer holds it (fenced by the token)."""
        updates = {"heartbeat_at": timezone.now()}
        progress = self._read_progress()
        if self.members:
            Job.objects.filter(
                pk__in=[m.pk for m in self.members], lease_token=self.token, status=Status.RUNNING
            ).update(heartbeat_at=updates["heartbeat_at"])
        changed = progress is not None and progress != self.progress
        if changed:
            updates["progress"] = progress
        with transaction.atomic():
            held = (
                Job.objects.filter(pk=self.job.pk, lease_token=self.token, status=Status.RUNNING).update(
                    **updates
                )
                == 1
            )
            if held and changed:
                events.emit_progress(self.job.pk, progress)
                self.progress = progress
        return held

    def _read_progress(self) -> dict | None:
        if self.account is None:  # it never started
            return None
        raw = runas.read_job_file(job_dir(self.job.pk) / "progress.json", self.account)
        try:
            data = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if data is None:
            return None
        return data if isinstance(data, dict) else {"value": data}

    def _lose_lease(self, child: subprocess.Popen) -> Outcome:
        log.warning(
            "job %s: attempt %s lost its lease; stopping its processes", self.job.pk, self.job.attempt
        )
        self.lease_lost = True
        procs.stop_group(child.pid, settings.GPUQ_KILL_GRACE_SECONDS, poll=child.poll)
        return Outcome(Status.FAILED, "lease lost")

    def _finish(self, outcome: Outcome) -> str:
        self._flush_log()
        if self.lease_lost:
            return "lease lost"  # someone else owns the job now; this attempt may change nothing
        if self.members:
            self._finish_members(outcome)
        progress = self._read_progress()
        fields = {"exit_code": outcome.exit_code, "error": outcome.error, "pid": None, **outcome.fields}
        if progress is not None:
            fields["progress"] = progress
        status, reason = outcome.status, outcome.reason
        if self.members and outcome.status in (Status.COMPLETED, Status.FAILED):
            status, reason, extra = self._batch_outcome(self.job, outcome)
            fields.update(extra)
        retry = None if self.members else self._retry(outcome)
        if retry is not None:
            status, reason = retry.pop("status"), retry.pop("reason")
            fields.update(retry)
        try:
            by = get_user_model().objects.filter(pk=outcome.by_id).first() if outcome.by_id else None
            transition(self.job, status, by=by, token=self.token, reason=reason, **fields)
        except (TransitionConflict, InvalidTransition):
            log.warning(
                "job %s: outcome %s not recorded: the lease changed hands", self.job.pk, outcome.status
            )
            return "lease lost"
        return str(status)

    def _flush_log(self) -> None:
        """Store the rest of the log before the outcome, so a reader who sees the job finished has it all."""
        try:
            if self.shipper is not None:
                self.shipper.flush()
                self.shipper.close()
        except DatabaseError as error:
            log.warning("job %s: the end of its log is not stored yet (%s)", self.job.pk, error)

    def _finish_members(self, outcome: Outcome) -> None:
        """A batch ended: each member by its own result when the batch exited 0 (a cancel asked of a
        member meanwhile wins), else back to the queue as a new attempt that runs alone."""
        for member in self.members:
            fresh = Job.objects.filter(pk=member.pk).first()
            if fresh is None:
                continue
            if fresh.stop_request == StopRequest.CANCEL:
                status, reason, fields = Status.CANCELLED, fresh.stop_reason or "cancelled", {}
            else:
                status, reason, fields = self._batch_outcome(fresh, outcome)
            try:
                transition(fresh, status, token=self.token, reason=reason, pid=None, **fields)
            except (TransitionConflict, InvalidTransition):
                log.warning("job %s: batch outcome not recorded: it moved meanwhile", member.pk)

    def _batch_outcome(self, job: Job, outcome: Outcome) -> tuple[Status, str, dict]:
        """One job of a batch that ended: by its own result file if the batch exited 0, else back to
        the queue as a new attempt that runs alone."""
        if outcome.status == Status.COMPLETED:
            raw = runas.read_job_file(job_dir(job.pk) / "result.json", self.account)
            status, error, code = batching.member_result(raw)
            reason = f"batch of job {self.job.pk} completed" + (f"; {error}" if error else "")
            return status, reason, {"error": error, "exit_code": code}
        reason = f"batch of job {self.job.pk} ended ({outcome.reason}); runs alone"
        return Status.PENDING, reason, batching.alone(job)

    def _retry(self, outcome: Outcome) -> dict | None:
        """The status and fields of a retry of this failed attempt, if the retry policy and the attempts
        left allow one: back to `pending`, or `scheduled` until the backoff has passed."""
        job = self.job
        if outcome.status != Status.FAILED or not outcome.cause or job.faults + 1 >= job.max_attempts:
            return None
        delay = policies.retry_delay(
            policies.enabled_configs(),
            cause=outcome.cause,
            exit_code=outcome.exit_code,
            failures=job.faults + 1,
        )
        if delay is None:
            return None
        at = timezone.now() + timedelta(seconds=delay)
        detail = f"{outcome.reason}; retry {job.attempt + 1} of up to {job.max_attempts}"
        return {
            "status": Status.SCHEDULED if delay > 0 else Status.PENDING,
            "reason": f"{detail}, in {delay:g} s",
            "attempt": job.attempt + 1,
            "faults": job.faults + 1,
            "start_after": at if delay > 0 else job.start_after,
            "started_at": None,
            "lease_token": "",
            "wait_reason": "retry" if delay > 0 else "",
            "wait_detail": f"{detail} at {at:%H:%M:%S} UTC" if delay > 0 else "",
        }
