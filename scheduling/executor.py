"""The executor: the django-q2 task that runs one attempt of a job on its node's GPUs.

It claims the attempt by compare-and-set (dispatched → running, fenced by the attempt's lease token),
so a duplicate delivery runs nothing. The job's argv runs without a shell in its own process group,
with an allow-listed environment, as the Unix account run-as chooses (scheduling/runas.py), in folders
that account owns; its log stays the server's. A monitor loop heartbeats (on the database's clock),
reads progress, honours stop requests, the time limit and the watchdog, and rides out database errors
with backoff. A fence thread that makes no database call stops the job once the monitor has not reached
the database for a whole lease (scheduling.leases), so the job is gone before anyone may take its lease,
even when a database call hangs. The outcome is recorded by one transition that also closes the attempt
and releases the GPUs; it is retried with backoff for as long as the database is away, so a job that
finished is never run again because of a database error.
"""

import json
import logging
import os
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError, transaction
from django.db.models.functions import Now
from django.utils import timezone

from scheduling import batching, events, leases, logship, policies, procs, runas, timeseries
from scheduling import progress as job_progress
from scheduling.models import Attempt, Job, StopRequest, WaitReason
from scheduling.outage import Outage, drop_connection
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
    exit_code: int | None = None  # the process's return code (negative: killed by that signal)
    error: str = ""
    by_id: int | None = None  # the user who asked for this outcome (cancel, pause)
    cause: str = ""  # for a failure that may retry: exit_code, time_limit or stalled
    fields: dict = field(default_factory=dict)  # more fields the outcome sets (a new attempt after a pause)


def run_job(job_id: int, token: str) -> str:
    """django-q2 entry point. Returns a short word for django-q2's task record."""

    def claim():
        job = Job.objects.filter(pk=job_id).first()
        if job is None:
            return None
        transition(
            job,
            Status.RUNNING,
            token=token,
            reason="executor started",
            started_at=timezone.now(),
            lease={"boot_id": procs.boot_id()},
        )
        return job

    try:
        job = until_recorded(f"job {job_id}: claim", claim)
    except (TransitionConflict, InvalidTransition):
        log.info("job %s: attempt token %s is not dispatched any more; nothing to run", job_id, token[:8])
        return "skipped"
    if job is None:
        return "gone"
    members = batching.start_members(job, token, timezone.now()) if job.batch_role == batching.LEADER else []
    return Execution(job, token, members).run()


def until_recorded(what: str, write):
    """Run the database write `write()` until the database answers: database errors are retried with
    backoff, logged once per outage. Other errors, TransitionConflict included, propagate: the database
    answered."""
    # Retried every heartbeat at most: well inside the take-over time the reaper waits after an outage.
    outage = Outage(what, log, last=settings.GPUQ_HEARTBEAT_SECONDS)
    while True:
        try:
            result = write()
        except DatabaseError as error:
            delay = outage.failed(error)
            drop_connection()
            time.sleep(delay)
            continue
        outage.recovered()
        return result


def _clock() -> float:
    """Seconds on a clock that also runs while the machine is suspended (a frozen VM must not think
    that no time passed and keep a lease it lost)."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


class Fence(threading.Thread):
    """Self-fencing that no database call can hold up: stops the job's process group (SIGTERM, grace,
    SIGKILL) once the monitor has not reached the database for `fence_after` seconds, counted from when
    its last successful heartbeat was *sent* (never later than the database's record of it). The
    monitor makes its database calls on its own thread; a call that hangs (a black-holed connection)
    blocks only the monitor, never this thread."""

    def __init__(self, job_id: int, pgid: int, poll, fence_after: float):
        super().__init__(name=f"fence-job-{job_id}", daemon=True)
        self.job_id, self.pgid, self.poll, self.fence_after = job_id, pgid, poll, fence_after
        self.last_contact = _clock()  # the claim has just been written
        self.fenced = False
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.05):
            silent = _clock() - self.last_contact
            if silent > self.fence_after:
                self.fenced = True  # before the signal: the monitor must not take the exit for an outcome
                log.warning(
                    "job %s: no database contact for %g s; stopping the job before its lease can be taken",
                    self.job_id,
                    silent,
                )
                # Only the grace left before `fence_after + grace`: a machine frozen past its lease wakes
                # late, and a whole grace then would keep the job alive into the take-over time.
                grace = settings.GPUQ_KILL_GRACE_SECONDS
                procs.stop_group(
                    self.pgid, max(0.0, min(grace, self.fence_after + grace - silent)), poll=self.poll
                )
                return


def outcome_file(job_id: int, token: str) -> Path:
    """Beside the job's log, in the server's own folder: a job's account cannot write (forge) it."""
    return settings.GPUQ_LOG_DIR / f"job-{job_id}.outcome-{token}.json"


def keep_outcome(job_id: int, token: str, outcome: Outcome) -> Path:
    """Keep the outcome on the node's disk until the database has it: if this executor dies meanwhile
    (its node is stopped during a database outage), the node records it when it starts again
    (scheduling.reaper.reconcile_node) instead of running the job again. Best effort: a disk that
    cannot take it leaves the outcome in memory only."""
    path = outcome_file(job_id, token)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with open(fd, "w") as kept:
            kept.write(json.dumps(asdict(outcome), default=str))
    except OSError as error:
        log.warning("job %s: could not keep the outcome on disk (%s)", job_id, error)
    return path


def record_kept_outcome(job: Job, token: str) -> str | None:
    """Record an outcome an executor kept on this node's disk and could not record (it died while the
    database was away): the recorded status, or None when there is none or the attempt moved on."""
    path = outcome_file(job.pk, token)
    if job.nodes > 1:
        return None  # one part's outcome is not the gang's: the attempt is taken over as a whole
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    outcome = Outcome(**{**data, "status": Status(data["status"])})
    log.warning("job %s: recording the outcome its executor kept on disk (%s)", job.pk, outcome.status)
    result = Execution(job, token)._finish(outcome)
    return None if result == "lease lost" else result


class Execution:
    def __init__(self, job: Job, token: str, members: list[Job] = ()):
        self.job = job
        self.token = token
        self.members = list(members)  # a batch: the leader's companions, run by the same process
        self.lease_lost = False
        self.fence: Fence | None = None
        self.identity: dict = {}
        self.progress = job.progress
        self.series: set[str] = set()  # the names of this attempt's series from its progress (timeseries)
        self.shipper: logship.LogShipper | None = None
        self.account: runas.Account | None = None  # the Unix account the job runs as

    def run(self) -> str:
        """Run the attempt. Errors writing the job's files (a full disk, say) fail it at once with the
        error as the reason, instead of leaving it to look like a lost executor."""
        try:
            return self._run()
        except OSError as error:
            log.warning("job %s: could not write the job's files: %s", self.job.pk, error)
            message = f"could not write the job's files: {error}"
            return self._finish(Outcome(Status.FAILED, message[:300], error=message))
        finally:
            if self.fence is not None:
                self.fence.halt.set()

    def _run(self) -> str:
        job = self.job
        runas.prepare_roots()
        log_path = self._log_path()
        batch = [job, *self.members]
        log_jobs = self._log_jobs(batch)
        until_recorded(
            f"job {job.pk}: log path",
            lambda: Job.objects.filter(pk__in=log_jobs, lease_token=self.token).update(
                log_path=str(log_path)
            ),
        )
        # The log stays the server's (0600): the job writes through the descriptor it inherits, and no
        # other job can read it.
        log_fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        os.fchmod(log_fd, 0o600)
        # The job's output goes to the database as it is written (the API reads it with no shared disk).
        self.shipper = logship.LogShipper(log_path, log_jobs, job.attempt)
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
                self.identity = {"pid": child.pid, "pid_start_time": procs.start_time(child.pid)}
                self.fence = Fence(job.pk, child.pid, child.poll, leases.current().fence_after)
                self.fence.start()
                outcome = self._monitor(child, log_file)
                self.fence.halt.set()  # the process is gone or stopped: nothing is left to fence
            finally:
                # Whatever happened, leave no process of this job behind (graceful stops came earlier).
                procs.signal_group(child.pid, signal.SIGKILL)
                child.wait()
            try:
                log_file.write(f"=== gpuq: {outcome.status} ({outcome.reason}) ===\n".encode())
            except OSError:
                pass  # the outcome is what matters now; a full disk must not lose it
        return self._finish(outcome)

    def _log_path(self) -> Path:
        return settings.GPUQ_LOG_DIR / f"job-{self.job.pk}.log"

    def _log_jobs(self, batch: list[Job]) -> list[int]:
        """The jobs whose stored log this execution's output is (a batch's jobs share one file)."""
        return [j.pk for j in batch]

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
        """Watch the process until it ends or must be stopped: heartbeats, progress, stop requests, the
        time limit and the watchdog. Database errors are retried with backoff (logged once per outage)
        without holding up the watch; the fence thread stops the job if they last a whole lease."""
        job, fence = self.job, self.fence
        grace = settings.GPUQ_KILL_GRACE_SECONDS
        stall = policies.stall_timeout(policies.enabled_configs(), job.stall_timeout_seconds)
        activity, last_activity = self._activity(log_file), time.monotonic()
        started = time.monotonic()
        next_heartbeat = next_check = next_try = started
        outage = Outage(f"job {job.pk} attempt {job.attempt}", log)
        while True:
            code = child.poll()
            if fence.fenced:
                return self._lose_lease(child, "no database contact for a whole lease")
            if code is not None:
                if code == 0:
                    return Outcome(Status.COMPLETED, "exit code 0", exit_code=0)
                return Outcome(
                    Status.FAILED, _ended_by(code), exit_code=code, error=_ended_by(code), cause="exit_code"
                )
            now = time.monotonic()
            if job.time_limit_seconds and now - started > job.time_limit_seconds:
                return Outcome(
                    Status.FAILED,
                    "time_limit",
                    exit_code=self._stop(child, grace),
                    error=f"time limit of {job.time_limit_seconds} s reached",
                    cause="time_limit",
                )
            if stall and now >= next_check:
                seen = self._activity(log_file)
                if seen != activity:
                    activity, last_activity = seen, now
                elif now - last_activity > stall:
                    return Outcome(
                        Status.FAILED,
                        "stalled",
                        exit_code=self._stop(child, grace),
                        error=f"watchdog: no output or progress for {stall:g} s",
                        cause="stalled",
                    )
            if now >= next_try and (now >= next_check or now >= next_heartbeat):
                try:
                    if now >= next_heartbeat:
                        sent = _clock()
                        if not self._heartbeat():
                            return self._lose_lease(child, "its attempt was taken over")
                        fence.last_contact = sent
                        next_heartbeat = now + settings.GPUQ_HEARTBEAT_SECONDS
                        self.shipper.ship()
                    row = self._stop_row()
                    next_check = now + settings.GPUQ_CANCEL_POLL_SECONDS
                    outage.recovered()
                except DatabaseError as error:
                    next_try = time.monotonic() + min(outage.failed(error), settings.GPUQ_HEARTBEAT_SECONDS)
                    drop_connection()
                    continue
                if row is None:
                    return self._lose_lease(child, "its job moved on")
                if row.get("broken"):  # a gang job whose other part failed or whose node was lost
                    code = self._stop(child, grace)
                    return Outcome(
                        Status.FAILED, row["broken"], exit_code=code, error=row["broken"], cause="gang"
                    )
                if row["stop_request"]:
                    code = self._stop(child, grace)
                    status, fields = stopped_outcome(job, row["stop_request"])
                    return Outcome(
                        status,
                        row["stop_reason"] or str(row["stop_request"]),
                        exit_code=code,
                        by_id=row["stop_requested_by"],
                        fields=fields,
                    )
            time.sleep(0.05)

    @staticmethod
    def _stop(child: subprocess.Popen, grace: float) -> int | None:
        """SIGTERM, grace, SIGKILL; the leader's return code (negative: the signal that ended it)."""
        procs.stop_group(child.pid, grace, poll=child.poll)
        try:
            return child.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return None

    def _activity(self, log_file) -> tuple:
        """What changes when the job shows signs of life: its log's size and its progress file."""
        try:
            progress = (job_dir(self.job.pk) / "progress.json").lstat()
            progress_mark = (progress.st_mtime_ns, progress.st_size)
        except OSError:
            progress_mark = None
        return os.fstat(log_file.fileno()).st_size, progress_mark

    def _heartbeat(self) -> bool:
        """Renew the lease on the database's clock; False when this attempt no longer holds it (its row
        was closed, by the reaper say). The first one also records the process (pid, start time)."""
        identity = self.identity
        progress = self._read_progress()
        changed = progress is not None and progress != self.progress
        with transaction.atomic():
            mine = Attempt.objects.filter(lease_token=self.token, ended_at__isnull=True)
            held = mine.filter(job_id=self.job.pk).update(heartbeat_at=Now(), **identity) == 1
            if held:
                self.identity = {}
            if held and self.members:
                mine.filter(job_id__in=[m.pk for m in self.members]).update(heartbeat_at=Now())
            if held and changed:
                Job.objects.filter(pk=self.job.pk, lease_token=self.token).update(progress=progress)
                self._record_series(progress)
                events.emit_progress(self.job.pk, progress)
                self.progress = progress
        return held

    def _record_series(self, progress: dict) -> None:
        """The report's numbers as points of the attempt's charts (in the caller's transaction)."""
        timeseries.record_progress(
            job_id=self.job.pk,
            attempt=self.job.attempt,
            progress=progress,
            at=timezone.now(),
            known=self.series,
        )

    def _stop_row(self) -> dict | None:
        """The job's stop request, or None when the job is no longer running under this token."""
        return (
            Job.objects.filter(pk=self.job.pk, lease_token=self.token, status=Status.RUNNING)
            .values("stop_request", "stop_requested_by", "stop_reason")
            .first()
        )

    def _read_progress(self) -> dict | None:
        if self.account is None:  # it never started
            return None
        limit = settings.GPUQ_PROGRESS_MAX_BYTES
        raw = runas.read_job_file(job_dir(self.job.pk) / "progress.json", self.account, limit=limit + 1)
        progress = job_progress.parse(raw, limit)
        if progress is not None and "rejected" in progress and progress != self.progress:
            log.warning("job %s: progress not stored: %s", self.job.pk, progress["rejected"])
        return progress

    def _lose_lease(self, child: subprocess.Popen, why: str) -> Outcome:
        log.warning(
            "job %s: attempt %s lost its lease (%s); stopping its processes",
            self.job.pk,
            self.job.attempt,
            why,
        )
        self.lease_lost = True
        procs.stop_group(child.pid, settings.GPUQ_KILL_GRACE_SECONDS, poll=child.poll)
        return Outcome(Status.FAILED, "lease lost")

    def _finish(self, outcome: Outcome) -> str:
        """Record the outcome, retrying through database errors for as long as the attempt may still be
        this executor's: the outcome stays here until the database has it (the reaper waits a whole
        take-over time after an outage before judging anyone's lease, see gpuq_node)."""
        if self.lease_lost:
            self._flush_log()
            return "lease lost"  # someone else owns the job now; this attempt may change nothing
        kept = keep_outcome(self.job.pk, self.token, outcome)

        def record() -> str:
            if self.shipper is not None:
                self.shipper.flush()  # the whole log before the outcome: a reader who sees it ended has it all
            return self._record(outcome)

        try:
            recorded = until_recorded(f"job {self.job.pk}: outcome {outcome.status}", record)
        except (TransitionConflict, InvalidTransition):
            recorded = None
        finally:
            kept.unlink(missing_ok=True)
            self._flush_log()  # closes the file (nothing is left to ship once recorded)
        if recorded is None:
            log.warning(
                "job %s: outcome %s not recorded: the lease changed hands", self.job.pk, outcome.status
            )
            return "lease lost"
        return recorded

    def _record(self, outcome: Outcome) -> str:
        if self.members:
            self._finish_members(outcome)
        progress = self._read_progress()
        fields = {"exit_code": outcome.exit_code, "error": outcome.error, **outcome.fields}
        if progress is not None:
            fields["progress"] = progress
            if progress != self.progress:  # its last report, written since the last heartbeat
                self._record_series(progress)
                self.progress = progress  # once, should recording the outcome be tried again
        status, reason = outcome.status, outcome.reason
        if self.members and outcome.status in (Status.COMPLETED, Status.FAILED):
            status, reason, extra = self._batch_outcome(self.job, outcome)
            fields.update(extra)
        retry = None if self.members else self._retry(outcome)
        if retry is not None:
            status, reason = retry.pop("status"), retry.pop("reason")
            fields.update(retry)
        by = get_user_model().objects.filter(pk=outcome.by_id).first() if outcome.by_id else None
        with transaction.atomic():
            transition(
                self.job,
                status,
                by=by,
                token=self.token,
                reason=reason,
                lease=_exit(outcome.exit_code),
                **fields,
            )
            if outcome.cause == "stalled":  # its owner may want to hear it (notifications' `stalled`)
                events.emit_notice(self.job, "stalled", outcome.error)
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
                transition(fresh, status, token=self.token, reason=reason, **fields)
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
        # Counted as the limit counts, in failures: runs that were no fault (a preemption, a lost dispatch)
        # make `attempt` larger, and "retry 22 of up to 20" told nobody anything.
        detail = f"{outcome.reason}; retry {job.faults + 2} of up to {job.max_attempts}"
        return {
            "status": Status.SCHEDULED if delay > 0 else Status.PENDING,
            "reason": f"{detail}, in {delay:g} s",
            "attempt": job.attempt + 1,
            "faults": job.faults + 1,
            "start_after": at if delay > 0 else job.start_after,
            "started_at": None,
            "lease_token": "",
            "wait_reason": WaitReason.RETRY if delay > 0 else WaitReason.NONE,
            "wait_detail": f"{detail} at {at:%H:%M:%S} UTC" if delay > 0 else "",
        }


def _exit(code: int | None) -> dict:
    """The attempt's end as the kernel reported it: an exit code, or the signal that killed it."""
    if code is not None and code < 0:
        return {"exit_code": None, "exit_signal": -code}
    return {"exit_code": code, "exit_signal": None}


def _ended_by(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit code {code}"
