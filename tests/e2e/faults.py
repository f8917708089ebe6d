"""The fault suite: tests/e2e/chaos.py's cluster of node processes and ticker (reused by import), plus a
web server, on PostgreSQL under every kind of fault: SIGKILL of executor workers, job processes, nodes and
the ticker; database connections cut with `pg_terminate_backend`; the database away (a TCP proxy between
gpuq and PostgreSQL cuts every connection and refuses new ones for a while); PostgreSQL restarted with
`-m immediate`; nodes frozen whole (SIGSTOP) past their node timeout, then resumed; the whole gpuq (web,
nodes, ticker) SIGKILLed at once and started again. Every node is its own machine (its own boot id and data
folder), and nodes may run with skewed wall clocks (GPUQ_CLOCK_OFFSET_SECONDS): leases are on the database's clock, so
skew must not matter. Used small by tests/e2e/test_faults.py (CI) and large by benchmarks/chaos.py.

Each job records its own start and end with its pid; the checks are made from those records and from the
database (see `check`). The caller has set Django up on the database the nodes use.
"""

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, connection, transaction

from tests.conftest import JOB_PYTHON, job_writable, wait_for
from tests.e2e import chaos
from tests.e2e.conftest import free_port
from tests.proxy import Proxy, fixed_port

# One attempt: an exclusive lock on its job's lock file for as long as the process lives (the kernel
# drops it however the process dies), so that a second live attempt of the job sees the first; a start
# and an end record (job, attempt, pid, wall time) in `records`; "done" once its work is complete.
JOB = r"""
import fcntl, os, signal, sys, time
job, attempt, pid = os.environ["GPUQ_JOB_ID"], os.environ["GPUQ_ATTEMPT"], os.getpid()
records = open(os.path.join(sys.argv[1], "records"), "a", buffering=1)
def record(what):
    records.write(f"{what} {job} {attempt} {pid} {time.time():.6f}\n")
def stopped(signum, frame):
    record("end")
    signal.signal(signum, signal.SIG_DFL)
    os.kill(pid, signum)
signal.signal(signal.SIGTERM, stopped)
lock = open(os.path.join(sys.argv[1], f"job-{job}.lock"), "a")
try:
    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
except OSError:
    record("overlap")
    sys.exit(7)
record("start")
time.sleep(float(sys.argv[2]))
record("done")
record("end")
"""

# "gpuq": the whole gpuq (web, every node, the ticker) SIGKILLed at once, then started again.
KINDS = ("worker", "job", "node", "tick", "connection", "outage", "restart", "freeze", "gpuq")
LEASE_SETTINGS = (
    "GPUQ_LEASE_SECONDS",
    "GPUQ_HEARTBEAT_SECONDS",
    "GPUQ_KILL_GRACE_SECONDS",
    "GPUQ_LEASE_MARGIN_SECONDS",
    "GPUQ_NODE_TIMEOUT_SECONDS",
)


@dataclass
class Report:
    jobs: int
    seconds: float
    asked: Counter
    made: Counter
    statuses: Counter = field(default_factory=Counter)
    attempts: int = 0
    broken: dict = field(default_factory=dict)  # promise → [(job id, detail)]
    notes: list = field(default_factory=list)

    @property
    def short(self) -> dict:
        return {
            kind: self.asked[kind] - self.made[kind] for kind in KINDS if self.made[kind] < self.asked[kind]
        }

    @property
    def ok(self) -> bool:
        return not self.short and not any(self.broken.values())

    def __str__(self) -> str:
        lines = [
            f"{self.jobs} jobs in {self.seconds:.1f} s: {dict(self.statuses)}; {self.attempts} attempts",
            "faults made/asked: " + ", ".join(f"{k} {self.made[k]}/{self.asked[k]}" for k in KINDS),
        ]
        for promise, found in self.broken.items():
            lines.append(f"{promise}: {len(found)}")
            lines.extend(f"  job {job}: {detail}" for job, detail in found[:20])
        lines.extend(self.notes)
        return "\n".join(lines)


def skewed(seconds: float) -> dict[str, str]:
    """The environment of a gpuq process whose wall clock is `seconds` off (its jobs keep the true one)."""
    return {"GPUQ_CLOCK_OFFSET_SECONDS": f"{seconds:g}"} if seconds else {}


class Cluster(chaos.Cluster):
    """chaos.Cluster with the production lease settings (or those given), one boot id per node, wall
    clocks skewed per node (`skews`: name → seconds) and, with `web`, a gpuq_web process."""

    def __init__(
        self,
        workdir: Path,
        env: dict,
        nodes: int,
        gpus_per_node: int,
        lease_env: dict,
        skews: dict | None = None,
        web: bool = False,
    ):
        super().__init__(workdir, env, nodes, gpus_per_node)
        for name in LEASE_SETTINGS:  # chaos.Cluster's 2 s lease is for a small test, not a long run
            self.env.pop(name, None)
            if name in os.environ:
                self.env[name] = os.environ[name]
        self.env.update(lease_env)
        self.frozen: dict[str, tuple[set[int], float]] = {}
        self.skews = skews or {}
        self.web: subprocess.Popen | None = None
        self.web_url = f"http://127.0.0.1:{free_port()}" if web else ""
        self.all_down_until = 0.0

    def start_node(self, name: str) -> None:
        # Each node a machine of its own: nodes judge only their own processes, others by heartbeat.
        super().start_node(name, GPUQ_BOOT_ID_OVERRIDE=f"boot-{name}", **skewed(self.skews.get(name, 0)))

    def start_web(self) -> None:
        port = self.web_url.rsplit(":", 1)[1]
        self.web = self._spawn(
            [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", port],
            GPUQ_DATA_DIR=str(self.workdir / "web"),
        )

    def start(self) -> None:
        super().start()
        if self.web_url:
            self.start_web()

    def revive(self) -> None:
        if time.monotonic() < self.all_down_until:
            return  # the whole gpuq is down for a while
        super().revive()
        if self.web_url and (self.web is None or self.web.poll() is not None):
            if self.web is not None:
                self.web.wait()
            self.start_web()

    def kill_all(self, down_for: float) -> None:
        """SIGKILL the whole gpuq at once (web, every node with its executors and jobs, the ticker), all
        of it down for `down_for` seconds."""
        self.frozen.clear()  # SIGKILL ends a stopped process too
        groups = set()
        for process in [*self.nodes.values(), self.ticker, self.web]:
            if process is not None and process.poll() is None:
                groups |= chaos.descendant_groups(process.pid) | {process.pid}
        for pgid in groups:
            chaos._kill_group(pgid)
        for process in [*self.nodes.values(), self.ticker, self.web]:
            if process is not None:
                process.wait()
        self.all_down_until = time.monotonic() + down_for

    def live(self) -> list[str]:
        return [n for n, p in self.nodes.items() if p and p.poll() is None and n not in self.frozen]

    def freeze(self, name: str, seconds: float) -> None:
        process = self.nodes[name]
        groups = chaos.descendant_groups(process.pid) | {process.pid}
        for pgid in groups:  # the node, its cluster, its executors and their jobs, all at once
            chaos._kill_group(pgid, signal.SIGSTOP)
        self.frozen[name] = (groups, time.monotonic() + seconds)

    def thaw(self, force: bool = False) -> None:
        for name, (groups, until) in list(self.frozen.items()):
            if force or time.monotonic() >= until:
                for pgid in groups:
                    chaos._kill_group(pgid, signal.SIGCONT)
                del self.frozen[name]

    def stop(self) -> None:
        self.thaw(force=True)
        if self.web is not None and self.web.poll() is None:
            chaos._kill_group(self.web.pid)
            self.web.wait()
        super().stop()


def retrying(fn, seconds: float = 120):
    """Run a database read of this process, riding out the faults it makes itself."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return fn()
        except (DatabaseError, InterfaceError):
            if time.monotonic() > deadline:
                raise
            connection.close()
            time.sleep(0.5)


def admin_sql(sql: str, params=()) -> list:
    db = connection.settings_dict
    with psycopg.connect(
        dbname="postgres",
        user=db["USER"],
        password=db["PASSWORD"] or None,
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        autocommit=True,
        connect_timeout=10,
    ) as admin:
        return admin.execute(sql, params).fetchall()


def terminate_connections() -> int:
    """Cut every connection to this gpuq's database (only this database: other work is left alone)."""
    mine = retrying(lambda: _scalar("SELECT pg_backend_pid()"))
    rows = admin_sql(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND pid <> %s",
        [connection.settings_dict["NAME"], mine],
    )
    return sum(1 for (done,) in rows if done)


def postgresql_cluster(port: int, listing: str | None = None) -> tuple[str, str]:
    """The (version, name) of the local PostgreSQL cluster that listens on `port`, from `pg_lsclusters`
    (or its output given as `listing`): the faults restart the cluster that holds gpuq's database, never
    another one on the same machine."""
    if listing is None:
        listing = subprocess.run(
            ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
        ).stdout
    for line in listing.splitlines():
        fields = line.split()
        if len(fields) >= 3 and fields[2] == str(port):
            return fields[0], fields[1]
    raise LookupError(f"no local PostgreSQL cluster listens on port {port} (pg_lsclusters)")


def _database_cluster() -> tuple[str, str]:
    return postgresql_cluster(int(connection.settings_dict["PORT"] or 5432))


def restart_postgresql() -> float:
    """Restart the cluster of gpuq's database at once (`-m immediate`: no checkpoint, every connection
    dropped); the seconds it took."""
    version, name = _database_cluster()
    began = time.monotonic()
    done = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "immediate"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    connection.close()
    if done.returncode:
        print(f"pg_ctlcluster failed: {done.stderr.strip()}", flush=True)
        return -1
    return time.monotonic() - began


def ensure_postgresql_running() -> None:
    version, name = _database_cluster()
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "start"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _scalar(sql: str):
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def submit(user, durations: list[float], workdir: Path, max_attempts: int, batch: int = 500) -> list[int]:
    """Submit through the service, many jobs a transaction: their tick requests coalesce into one."""
    from scheduling.services import job_submit

    ids = []
    for start in range(0, len(durations), batch):
        with transaction.atomic():
            for duration in durations[start : start + batch]:
                argv = [JOB_PYTHON, "-c", JOB, str(workdir), f"{duration:.2f}"]
                ids.append(job_submit(user=user, argv=argv, max_attempts=max_attempts).pk)
    return ids


def run(
    *,
    user,
    jobs: int,
    asked: dict[str, int],
    workdir: Path,
    env: dict,
    lease_env: dict,
    nodes: int = 4,
    gpus_per_node: int = 2,
    seed: int = 0,
    timeout: float = 3600,
    max_attempts: int = 20,
    freeze_seconds: tuple[float, float] = (0, 0),
    outage_seconds: tuple[float, float] = (1, 5),
    gpuq_down_seconds: tuple[float, float] = (0.5, 3),
    skews: dict | None = None,
    web: bool = False,
    mean_duration: float = 3.0,
    restarts_from: float = 0,
    log=print,
) -> Report:
    """Run `jobs` jobs on `nodes` node processes while the faults `asked` (kind → count) are made; return
    the report of `check`. `skews` shifts nodes' wall clocks (node index → seconds); `web` adds a gpuq_web
    process (always there when the whole gpuq is killed)."""
    from gpus.models import Node
    from scheduling.models import Job, PolicyType
    from scheduling.policies import set_policy
    from scheduling.states import TERMINAL

    rng = random.Random(seed)
    job_writable(workdir)  # jobs (run as `nobody` by a root node) write their records and locks here
    set_policy(PolicyType.RETRY, enabled=True, config={"exit_codes": [-9], "backoff_seconds": 0})
    proxy = None
    if asked.get("outage"):  # gpuq reaches PostgreSQL through a proxy that the outages cut
        db = connection.settings_dict
        proxy = Proxy(db["HOST"] or "localhost", int(db["PORT"] or 5432), listen_port=fixed_port())
        password = f":{db['PASSWORD']}" if db["PASSWORD"] else ""
        env = {
            **env,
            "DATABASE_URL": f"postgres://{db['USER']}{password}@127.0.0.1:{proxy.port}/{db['NAME']}",
        }
    names = [f"chaos-{i}" for i in range(nodes)]
    skews = {names[i]: seconds for i, seconds in (skews or {}).items()}
    cluster = Cluster(
        workdir, env, nodes, gpus_per_node, lease_env, skews=skews, web=web or bool(asked.get("gpuq"))
    )
    cluster.start()
    wait_for(
        lambda: Node.objects.filter(name__in=cluster.nodes).count() == nodes,
        timeout=120,
        message="every node to register",
    )
    # Mostly short jobs, one in four longer than the others together, so that kills find work to hit.
    durations = [
        rng.uniform(2, 4) * mean_duration if rng.random() < 0.25 else rng.uniform(0.1, 1) * mean_duration
        for _ in range(jobs)
    ]
    began = time.monotonic()
    ids = submit(user, durations, workdir, max_attempts)
    by_id = dict(zip(ids, durations, strict=True))
    log(f"submitted {jobs} jobs in {time.monotonic() - began:.1f} s")
    # The faults, in random order, spread over about 3/4 of the expected run.
    plan = [kind for kind in KINDS for _ in range(asked.get(kind, 0))]
    rng.shuffle(plan)
    expected = sum(durations) / (nodes * gpus_per_node)
    gap = max(0.2, 0.75 * expected / max(1, len(plan)))
    made, extra = Counter(), Counter()
    restarts_min_gap = 20.0
    last_restart = -1e9
    said = began
    faults = Faults(cluster, rng, by_id, freeze_seconds, outage_seconds, gpuq_down_seconds, proxy, extra)

    def unfinished() -> bool:
        return retrying(lambda: Job.objects.filter(pk__in=ids).exclude(status__in=TERMINAL).exists())

    try:
        deadline = began + timeout
        while plan and time.monotonic() < deadline:
            time.sleep(rng.uniform(0.5, 1.5) * gap)
            cluster.thaw()
            faults.end_outage()
            retrying(cluster.revive)
            if not unfinished():
                break
            if time.monotonic() - said > 60:
                said = time.monotonic()
                log(f"{said - began:.0f} s: faults made {dict(made)}, {len(plan)} to go")
            kind = plan[0]
            if kind == "restart" and (
                time.monotonic() - last_restart < restarts_min_gap or time.monotonic() - began < restarts_from
            ):
                plan.append(plan.pop(0))  # one restart at a time, the cluster back on its feet between
                continue
            try:
                done = faults.make(kind)
            except (DatabaseError, InterfaceError, psycopg.Error):
                connection.close()
                done = False
            if done:
                made[kind] += 1
                plan.pop(0)
                if kind == "restart":
                    last_restart = time.monotonic()
                    log(f"PostgreSQL restarted in {extra['restart_seconds_last']:.1f} s")
            else:
                plan.append(plan.pop(0))
        if plan:
            log(f"the jobs ended before {len(plan)} faults could be made")
        while time.monotonic() < deadline:
            cluster.thaw()  # a frozen node stays frozen for its whole time
            faults.end_outage()
            retrying(cluster.revive)
            if not unfinished():
                break
            time.sleep(0.5)
    finally:
        seconds = time.monotonic() - began
        cluster.thaw(force=True)
        faults.end_outage(force=True)
        if asked.get("restart"):
            ensure_postgresql_running()
        connection.close()
        report = Report(jobs=jobs, seconds=seconds, asked=Counter(asked), made=made)
        strays_before_stop = chaos._job_processes(workdir)
        retrying(lambda: check(report, ids, workdir, skews))
        if cluster.web_url:
            report.broken["the web not serving at the end"] = (
                [] if serving(cluster) else [(None, "no answer")]
            )
        cluster.stop()
        if proxy is not None:
            proxy.close()
    report.broken["stray job processes (alive at the end)"] = [(None, f"{strays_before_stop} processes")] * (
        strays_before_stop > 0
    )
    report.notes.append(
        f"connections cut {extra['connections']}; PostgreSQL restarts took {extra['restart_seconds']:.1f} s in "
        f"all; nodes frozen {extra['frozen_seconds']:.0f} s in all ({freeze_seconds[0]:.0f}-{freeze_seconds[1]:.0f} s each); "
        f"database away (proxy) {extra['outage_seconds']:.1f} s in all; whole gpuq down {extra['gpuq_seconds']:.1f} s "
        f"in all"
    )
    return report


def serving(cluster: Cluster) -> bool:
    """The web answers (after being killed with the rest of gpuq, it was started again)."""
    from tests.e2e.conftest import wait_serving

    try:
        wait_serving(cluster.web_url, timeout=60)
    except AssertionError:
        return False
    return True


class Faults:
    """Makes one fault of a kind at a time; ends the database outages when their time is up."""

    def __init__(
        self, cluster, rng, durations, freeze_seconds, outage_seconds, gpuq_down_seconds, proxy, extra
    ):
        self.cluster, self.rng, self.durations, self.proxy, self.extra = cluster, rng, durations, proxy, extra
        self.seconds = {"freeze": freeze_seconds, "outage": outage_seconds, "gpuq": gpuq_down_seconds}
        self.outage_until: float | None = None
        self.hits: Counter = Counter()  # job id → kills that hit it (see chaos._kill)

    def end_outage(self, force: bool = False) -> None:
        if self.outage_until is not None and (force or time.monotonic() >= self.outage_until):
            try:
                self.proxy.restore()
            except OSError as error:  # the port is not free yet: the outage lasts a moment longer
                if force:  # the end of the run: the proxy is closed anyway, the cluster must be stopped
                    self.outage_until = None
                    return
                self.extra["outage_seconds"] += 0.5
                self.outage_until = time.monotonic() + 0.5
                print(f"proxy: cannot listen again yet ({error})", flush=True)
                return
            self.outage_until = None

    def make(self, kind: str) -> bool:
        cluster, rng, extra = self.cluster, self.rng, self.extra
        if kind in ("worker", "job", "node", "tick"):
            return chaos._kill(kind, cluster, rng, self.durations, self.hits)
        if kind == "connection":
            cut = terminate_connections()
            extra["connections"] += cut
            return cut > 0
        if kind == "outage":
            if self.outage_until is not None:
                return False  # one outage at a time
            seconds = rng.uniform(*self.seconds["outage"])
            self.proxy.cut()  # every connection of gpuq closed, new ones refused
            self.outage_until = time.monotonic() + seconds
            extra["outage_seconds"] += seconds
            return True
        if kind == "restart":
            took = restart_postgresql()
            if took < 0:
                return False
            extra["restart_seconds"] += took
            extra["restart_seconds_last"] = took
            return True
        if kind == "freeze":
            live = cluster.live()
            if len(live) < 2:  # keep one node working
                return False
            seconds = rng.uniform(*self.seconds["freeze"])
            cluster.freeze(rng.choice(live), seconds)
            extra["frozen_seconds"] += seconds
            return True
        if kind == "gpuq":
            seconds = rng.uniform(*self.seconds["gpuq"])
            cluster.kill_all(seconds)
            extra["gpuq_seconds"] += seconds
            return True
        raise ValueError(kind)


def read_records(workdir: Path) -> list[tuple[str, int, int, int, float]]:
    path = workdir / "records"
    rows = []
    for line in path.read_text().splitlines() if path.exists() else []:
        parts = line.split()
        if len(parts) == 5:
            rows.append((parts[0], int(parts[1]), int(parts[2]), int(parts[3]), float(parts[4])))
    return rows


def check(report: Report, ids: list[int], workdir: Path, skews: dict | None = None) -> None:
    """Every promise, from the jobs' own records and the database."""
    from gpus.models import Allocation
    from scheduling.models import Attempt, Job
    from scheduling.states import TERMINAL, Status

    jobs = {
        r["pk"]: r
        for r in Job.objects.filter(pk__in=ids).values("pk", "status", "attempt", "started_at", "faults")
    }
    attempts: dict[int, list] = {}
    for a in Attempt.objects.filter(job_id__in=ids).select_related("node").order_by("job_id", "number"):
        attempts.setdefault(a.job_id, []).append(a)
    report.statuses = Counter(r["status"] for r in jobs.values())
    report.attempts = sum(len(a) for a in attempts.values())
    records = read_records(workdir)
    runs: dict[tuple[int, int], dict] = {}  # (job, attempt) → pid → {start, end, done}
    for what, job, number, pid, at in records:
        runs.setdefault((job, number), {}).setdefault(pid, {})[what] = at
    broken = report.broken

    broken["lost (not finished at the end)"] = [
        (pk, r["status"]) for pk, r in jobs.items() if r["status"] not in TERMINAL
    ]
    # Overlaps: a second attempt found the first's lock held, or started before the first's recorded end.
    overlaps = [
        (job, f"attempt {n} pid {pid} found the lock held")
        for (job, n), pids in runs.items()
        for pid, marks in pids.items()
        if "overlap" in marks
    ]
    per_job: dict[int, list] = {}
    for (job, number), pids in runs.items():
        for pid, marks in pids.items():
            if "start" in marks:
                per_job.setdefault(job, []).append((marks["start"], marks.get("end"), number, pid))
    for job, executions in per_job.items():
        executions.sort(key=lambda execution: execution[0])
        latest = None  # the execution with the latest recorded end so far
        for start, end, number, pid in executions:
            if latest and start < latest[0]:
                overlaps.append(
                    (
                        job,
                        f"attempt {number} (pid {pid}) started {latest[0] - start:.2f} s before attempt "
                        f"{latest[1]} (pid {latest[2]}) ended",
                    )
                )
            if end is not None and (latest is None or end > latest[0]):
                latest = (end, number, pid)
    broken["overlapping executions of one job"] = overlaps

    unrecorded = []
    for job, executions in per_job.items():
        numbers = {a.number: a for a in attempts.get(job, [])}
        for _, _, number, pid in executions:
            if number not in numbers:
                unrecorded.append((job, f"attempt {number} (pid {pid}) ran with no Attempt row"))
        for number in {n for _, _, n, _ in executions}:
            pids = [p for _, _, n, p in executions if n == number]
            if len(pids) > 1:
                unrecorded.append((job, f"attempt {number} ran {len(pids)} times (pids {pids})"))
        rows = attempts.get(job, [])
        for a in rows[:-1]:
            if not a.reason or a.ended_at is None:
                unrecorded.append(
                    (job, f"attempt {a.number} re-run without an end and a reason: {a.reason!r}")
                )
    broken["re-runs without an Attempt row and a reason"] = unrecorded

    completed_again = []
    for job, rows in attempts.items():
        for a in rows[:-1]:
            if a.outcome == Status.COMPLETED:
                completed_again.append((job, f"attempt {a.number} completed, then attempt {rows[-1].number}"))
    broken["completed jobs run again"] = completed_again

    unfinished = []
    for pk, r in jobs.items():
        if r["status"] == Status.COMPLETED:
            last = attempts.get(pk, [None])[-1]
            number = last.number if last else r["attempt"]
            if not any("done" in marks for marks in runs.get((pk, number), {}).values()):
                unfinished.append((pk, f"completed, but attempt {number} has no record of its work done"))
    broken["completed without finishing the work"] = unfinished

    held = Allocation.objects.filter(job_id__in=ids, released_at__isnull=True, job__status__in=TERMINAL)
    broken["GPUs held by finished jobs"] = [(a.job_id, f"GPU {a.gpu_id}, attempt {a.attempt}") for a in held]
    active = Allocation.objects.active().count()
    if active:
        broken["GPUs still allocated at the end"] = [(None, f"{active} allocations")]
    check_skews(report, jobs, attempts, skews or {})
    twice = Counter(job for (job, _), pids in runs.items() for marks in pids.values() if "done" in marks)
    report.notes.append(
        f"jobs whose work ran to its end more than once (killed after their work, before their exit "
        f"was recorded): {sum(1 for c in twice.values() if c > 1)}"
    )
    reasons = Counter(
        (a.reason.split(" within")[0].split(" for ")[0].split(";")[0][:60] or "(none)")
        for rows in attempts.values()
        for a in rows[:-1]
    )
    report.notes.append(f"re-run reasons: {dict(reasons.most_common(8))}")
    # Attempt rows beyond the faults counted: re-runs that were no fault (a dispatch lost before any
    # executor claimed it), by design not counted against max_attempts (issue 10's 23-24 rows for 19).
    uncounted = Counter()
    for pk, rows in attempts.items():
        if len(rows) - 1 > jobs[pk]["faults"]:
            for a in rows[:-1]:
                if a.started_at is None:
                    uncounted[a.reason.split(" within")[0][:60]] += 1
    report.notes.append(f"re-runs counted as no fault (never claimed): {dict(uncounted.most_common(6))}")


def check_skews(report: Report, jobs: dict, attempts: dict, skews: dict[str, float]) -> None:
    """Show that each skewed node's clock really was off: its executor stamps a job's start with its own
    clock, the attempt row with the database's. A skew that did not take effect would test nothing."""
    seen: dict[str, list[float]] = {}
    for pk, rows in attempts.items():
        last, started = rows[-1], jobs[pk]["started_at"]
        if last.node_id and last.started_at and started and rows[-1].node.name in skews:
            seen.setdefault(last.node.name, []).append((started - last.started_at).total_seconds())
    wrong = []
    for name, seconds in skews.items():
        offsets = sorted(seen.get(name, []))
        median = offsets[len(offsets) // 2] if offsets else None
        if median is None or abs(median - seconds) > max(5.0, abs(seconds) / 4):
            wrong.append((None, f"node {name}: clock {seconds:+g} s asked, seen {median}"))
        else:
            report.notes.append(
                f"node {name}: its clock {median:+.1f} s off the database's ({len(offsets)} starts)"
            )
    report.broken["clock skew not in effect"] = wrong
