"""Chaos: jobs run on several real node processes while executor workers, job processes, whole nodes and
tick processes are killed with SIGKILL at random. Then: every job ends in a terminal status, no job ever
ran twice at the same time, none is lost, and no GPU stays allocated.

Used by tests/e2e/test_chaos.py at small scale and by benchmarks/chaos.py at any scale. The caller has
set up Django on the database the node processes use (`env` holds their DATABASE_URL).
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings
from django.db import close_old_connections

from tests.conftest import JOB_PYTHON, job_writable
from tests.e2e.conftest import alive, descendants, proc_stat

# Each attempt holds an exclusive lock on its job's lock file while it lives (the kernel drops it when the
# process dies, however it dies). A second live attempt of the same job cannot get it, and says so.
JOB = r"""
import fcntl, os, sys, time
job, attempt = os.environ["GPUQ_JOB_ID"], os.environ["GPUQ_ATTEMPT"]
marks = open(os.path.join(sys.argv[1], "marks"), "a", buffering=1)
lock = open(os.path.join(sys.argv[1], f"job-{job}.lock"), "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    marks.write(f"overlap {job} {attempt}\n")
    sys.exit(7)
marks.write(f"start {job} {attempt}\n")
time.sleep(float(sys.argv[2]))
marks.write(f"done {job} {attempt}\n")
"""

# A ticker process as gpuq runs one: under the ticker lock (a bare tick() here ran beside the real tickers,
# and the 1,000-job run's first dispatches met the one-allocation-per-GPU constraint). A kill mid-tick
# then also checks that the lock goes with the process.
TICKER = (
    "import django, time; django.setup(); from scheduling import ticker\n"
    "while True:\n    ticker.run(force=True, wait=True); time.sleep(0.2)"
)


@dataclass
class Report:
    jobs: int
    statuses: Counter
    kills: Counter
    attempts: int  # all attempts of all jobs
    overlaps: int  # a second live attempt of a job found the first still running
    lost: list  # jobs not in a terminal status at the end
    unfinished_work: list  # completed jobs whose final attempt did not reach its end
    allocated: int  # GPUs still allocated at the end
    stray_processes: int  # job processes still alive at the end
    seconds: float

    @property
    def ok(self) -> bool:
        return not (
            self.overlaps or self.lost or self.unfinished_work or self.allocated or self.stray_processes
        )

    def __str__(self) -> str:
        return (
            f"{self.jobs} jobs in {self.seconds:.1f} s: {dict(self.statuses)}; kills {dict(self.kills)}; "
            f"{self.attempts} attempts; overlaps {self.overlaps}; lost {len(self.lost)}; "
            f"completed without finishing {len(self.unfinished_work)}; GPUs still allocated {self.allocated}; "
            f"stray job processes {self.stray_processes}"
        )


class Cluster:
    """The node processes and a ticker process, each restartable after a kill."""

    def __init__(self, workdir: Path, env: dict, nodes: int, gpus_per_node: int):
        self.workdir, self.env, self.gpus = workdir, env, gpus_per_node
        self.nodes: dict[str, subprocess.Popen | None] = {f"chaos-{i}": None for i in range(nodes)}
        self.down_until: dict[str, float] = {}
        self.ticker: subprocess.Popen | None = None
        timing = {
            "GPUQ_TICK_SECONDS": "0.5",
            "GPUQ_HEARTBEAT_SECONDS": "0.3",
            "GPUQ_LEASE_SECONDS": "2",
            "GPUQ_NODE_TIMEOUT_SECONDS": "3",
            "GPUQ_KILL_GRACE_SECONDS": "1",
            "GPUQ_Q_POLL_SECONDS": "0.05",
            "GPUQ_LOG_LEVEL": "ERROR",
            "GPUQ_INVENTORY": "declared",
        }
        self.env = {**env, **timing}

    def _spawn(self, argv, log: str = "", **env) -> subprocess.Popen:
        """Start a process in its own session; its output goes to `workdir/<log>.log` (appended: one log
        across its restarts) when `log` names one, else nowhere."""
        output = open(self.workdir / f"{log}.log", "ab") if log else subprocess.DEVNULL
        try:
            return subprocess.Popen(
                argv,
                env={**self.env, **env},
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
                start_new_session=True,
            )
        finally:
            if log:
                output.close()

    def start_node(self, name: str, **env) -> None:
        self.nodes[name] = self._spawn(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_node"],
            log=name,
            GPUQ_NODE_NAME=name,
            GPUQ_DECLARED_GPUS=f"{self.gpus}x24GB",
            GPUQ_DATA_DIR=str(self.workdir / name),
            **env,
        )

    def start_ticker(self) -> None:
        self.ticker = self._spawn(
            [sys.executable, "-c", TICKER], DJANGO_SETTINGS_MODULE="queueproject.settings"
        )

    def start(self) -> None:
        for name in self.nodes:
            self.start_node(name)
        self.start_ticker()

    def revive(self) -> None:
        """Restart what was killed and has been down long enough."""
        now = time.monotonic()
        for name, process in self.nodes.items():
            if (process is None or process.poll() is not None) and now >= self.down_until.get(name, 0):
                if process is not None:
                    process.wait()
                self.start_node(name)
        if self.ticker.poll() is not None:
            self.start_ticker()

    def kill_node(self, name: str, down_for: float) -> None:
        process = self.nodes[name]
        for pgid in descendant_groups(process.pid) | {process.pid}:
            _kill_group(pgid)
        process.wait()
        self.down_until[name] = time.monotonic() + down_for

    def stop(self) -> None:
        for process in [*self.nodes.values(), self.ticker]:
            if process is not None and process.poll() is None:
                _kill_group(process.pid, signal.SIGTERM)
        for process in [*self.nodes.values(), self.ticker]:
            if process is None:
                continue
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                for pgid in descendant_groups(process.pid) | {process.pid}:
                    _kill_group(pgid)
                process.wait()


def _kill_group(pgid: int, sig=signal.SIGKILL) -> bool:
    """Signal a process group; False when there was none (it had ended)."""
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def descendant_groups(pid: int) -> set[int]:
    """Process groups of `pid`'s descendants (the node's django-q2 cluster, its workers, their jobs)."""
    return {int(fields[2]) for child in descendants(pid) if (fields := proc_stat(child))}


def run(
    *,
    user,
    jobs: int,
    kills: int,
    workdir: Path,
    env: dict,
    nodes: int = 2,
    gpus_per_node: int = 2,
    seed: int = 0,
    timeout: float = 300,
    log=print,
) -> Report:
    from gpus.models import Allocation
    from scheduling.models import Job, PolicyType
    from scheduling.policies import set_policy
    from scheduling.services import job_submit
    from scheduling.states import TERMINAL

    rng = random.Random(seed)
    job_writable(workdir)  # the jobs (which may run as `nobody`) write their marks and locks here
    # Killed job processes exit by signal: let those failures retry at once, like the lost attempts.
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [-9], "backoff_seconds": 0})
    cluster = Cluster(workdir, env, nodes, gpus_per_node)
    cluster.start()
    from gpus.models import Node

    while Node.objects.filter(name__in=cluster.nodes).count() < nodes:
        time.sleep(0.1)
    began = time.monotonic()
    durations = {}
    for _ in range(jobs):
        duration = _duration(rng)
        argv = [JOB_PYTHON, "-c", JOB, str(workdir), f"{duration:.2f}"]
        durations[job_submit(user=user, argv=argv, max_attempts=50).pk] = duration
    ids = list(durations)
    killed = Counter()
    try:
        # Kills spread over the expected run time (mean job 1.6 s, on all the GPUs at once).
        gap = max(0.1, jobs * 1.6 / (nodes * gpus_per_node) / max(1, kills))
        while sum(killed.values()) < kills and time.monotonic() - began < timeout:
            time.sleep(rng.uniform(0.5, 1.5) * gap)
            if not Job.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists():
                break
            cluster.revive()
            kind = rng.choice(["worker", "worker", "job", "node", "tick"])
            if _kill(kind, cluster, rng, durations):
                killed[kind] += 1
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            cluster.revive()
            close_old_connections()
            if not Job.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists():
                break
            time.sleep(0.5)
    finally:
        seconds = time.monotonic() - began
        close_old_connections()
        rows = list(Job.objects.filter(pk__in=ids).values("pk", "status", "attempt"))
        allocated = Allocation.objects.active().count()
        stray = _job_processes(workdir)
        cluster.stop()
    marks = (workdir / "marks").read_text().split("\n") if (workdir / "marks").exists() else []
    done = {tuple(line.split()[1:]) for line in marks if line.startswith("done ")}
    return Report(
        jobs=jobs,
        statuses=Counter(r["status"] for r in rows),
        kills=killed,
        attempts=sum(r["attempt"] for r in rows),
        overlaps=sum(line.startswith("overlap ") for line in marks),
        lost=[r["pk"] for r in rows if r["status"] not in TERMINAL],
        unfinished_work=[
            r["pk"]
            for r in rows
            if r["status"] == "completed" and (str(r["pk"]), str(r["attempt"])) not in done
        ],
        allocated=allocated,
        stray_processes=stray,
        seconds=seconds,
    )


def _duration(rng: random.Random) -> float:
    """Mostly short jobs; two in five outlive the 2 s lease, so that an orphan left running by a lost
    executor would still be alive when its job is requeued (and be caught)."""
    return rng.uniform(3, 5) if rng.random() < 0.4 else rng.uniform(0.1, 1.0)


HIT_CAP = 3  # kills aimed at one job, at most (see _kill)


def _kill(
    kind: str, cluster: Cluster, rng: random.Random, durations: dict[int, float], hits: Counter | None = None
) -> bool:
    """Make one SIGKILL of `kind`; True when it hit. With `hits` (job id → kills that hit it, kept by the
    caller) a job, executor or node kill aims at the running job hit least, and never at one already hit
    HIT_CAP times: the 1,000-job run had 8 jobs running at a time for 600 such kills, which hit the same
    few jobs again and again until their attempts ran out (11 of the first 65 to end failed that way).
    Waiting for a job never hit instead left too few long jobs for the executor and node kills."""
    from django.utils import timezone

    from scheduling.models import Attempt

    # Aim at a running job, drawn at random among those with time left: a kill must find its process
    # alive, and if the process outlived a lost executor it would still be alive when the job is
    # requeued. (Aiming always at the job with the most time left hit one job again and again: its re-run
    # was again the longest, until its attempts were spent.) Its start from the attempt row (the
    # database's clock: a node's skewed clock stamps the job's started_at), and only a job whose process is
    # alive: a row still running after its node was killed names a dead process, and a kill of it is no
    # fault made.
    now = timezone.now()
    running = [
        row
        for row in Attempt.objects.filter(
            job__status="running", ended_at__isnull=True, pid__isnull=False, started_at__isnull=False
        ).values_list("job_id", "pid", "started_at", "node__name")
        if alive(row[1])
    ]
    # Executors and nodes are killed only under a job with over 2.5 s left (more than a lease); jobs with
    # any time left.
    least = 2.5 if kind in ("worker", "node") else 0.2
    running = [r for r in running if durations.get(r[0], 0) - (now - r[2]).total_seconds() > least]
    if hits is not None and kind in ("job", "worker", "node"):  # the least hit first, none past the cap
        running = [r for r in running if hits[r[0]] < HIT_CAP]
        fewest = min((hits[r[0]] for r in running), default=0)
        running = [r for r in running if hits[r[0]] == fewest]
    target = rng.choice(running) if running else None
    hit = _kill_target(kind, cluster, rng, target)
    if hit and hits is not None and target is not None and kind in ("job", "worker", "node"):
        hits[target[0]] += 1
    return hit


def _kill_target(kind: str, cluster: Cluster, rng: random.Random, target: tuple | None) -> bool:
    target_node = target[3] if target else None
    running = [target[1]] if target else []
    if kind == "job" and running:
        return _kill_group(running[0])  # the job's own process group: it fails with -9 and retries
    if kind == "worker" and running:
        worker = proc_stat(running[0])
        if worker and int(worker[1]) > 1:  # its executor (a django-q2 worker), not init after it died
            try:
                os.kill(int(worker[1]), signal.SIGKILL)  # the job dies with it
            except ProcessLookupError:
                return False
            return True
        return False
    if kind == "node":
        up = [name for name, p in cluster.nodes.items() if p and p.poll() is None]
        if target_node and len(up) > 1:  # keep one node up, so that work goes on
            name = target_node if target_node in up else rng.choice(up)
            cluster.kill_node(name, down_for=rng.uniform(0.5, 3))
            return True
        return False
    if kind == "tick" and cluster.ticker.poll() is None:
        _kill_group(cluster.ticker.pid)
        return True
    return False


def _job_processes(workdir: Path) -> int:
    count = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read()
            except OSError:
                continue
            if b"GPUQ_JOB_ID" in cmdline and str(workdir).encode() in cmdline and alive(int(entry)):
                count += 1
    return count
