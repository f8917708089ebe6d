"""What an idle gpuq costs: CPU-seconds per minute of a web process with its live relay running (a
websocket client connected) and of a node (its loop and its django-q2 cluster), with nothing to do.

Starts, on a fresh SQLite database in a temporary folder (or on the PostgreSQL database given with
--database-url, which it migrates: give it an empty one): a `gpuq_web` with one websocket client, a
`gpuq_node`, and, as baselines in the same run, a `gpuq_web` nobody is connected to (no relay) and a bare
django-q2 cluster (`qcluster` with django-q2's own ORM broker and gpuq's poll, on a queue nobody uses). After a warm-up it reads each
process tree's CPU time from /proc over the window. On PostgreSQL it also counts the connections opened
in a second window with the baselines stopped (pg_stat_database.sessions): a process that holds its
connections opens none. 1% of a core is
0.6 CPU-seconds per minute.

    .venv/bin/python benchmarks/idle.py [--seconds 60] [--warmup 15] [--waiting 10000] [--database-url URL]
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from _common import logged_in, setup_django  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(root: int) -> float:
    """User + system CPU time of `root` and every living descendant, from /proc."""
    parents, times = {}, {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        times[int(entry.name)] = (int(fields[11]) + int(fields[12])) / TICKS
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return sum(times.get(pid, 0.0) for pid in tree)


def sessions(connection) -> int | None:
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()")
        return cursor.fetchone()[0]


def wait_in_paused_queue(owner, count: int) -> None:
    """`count` jobs waiting in a queue an operator paused: nothing starts, yet every whole tick plans them
    all (what a node's periodic tick costs while a long queue waits and nothing happens)."""
    from django.utils import timezone

    from scheduling.models import Job, PolicyType, SchedulingPolicy
    from scheduling.states import Status

    SchedulingPolicy.objects.create(type=PolicyType.QUEUE_PAUSE, config={"reason": "idle benchmark"})
    now = timezone.now()
    Job.objects.bulk_create(
        [
            Job(owner=owner, status=Status.PENDING, gpu_count=1, argv=["true"], submitted_at=now,
                queue_order=now.timestamp(), name=f"waiting-{i}")
            for i in range(count)
        ],
        batch_size=1000,
    )  # fmt: skip


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=15.0)
    parser.add_argument("--database-url", default="")
    parser.add_argument(
        "--waiting",
        type=int,
        default=0,
        help="jobs waiting meanwhile (the queue paused by an operator, so none starts)",
    )
    args = parser.parse_args()

    data = setup_django("gpuq-idle-", args.database_url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from websockets.sync.client import connect

    call_command("migrate", verbosity=0)
    name = f"idle-{os.getpid()}"
    owner = get_user_model().objects.create_superuser(name, password="idle-bench-only", email="")
    if args.waiting:
        wait_in_paused_queue(owner, args.waiting)
    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY, "GPUQ_DATA_DIR": data}
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    manage = [sys.executable, str(ROOT / "manage.py")]

    def spawn(*argv, **extra):
        return subprocess.Popen(
            [*manage, *argv],
            env={**env, **extra},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    port = 8800 + os.getpid() % 900
    processes = {
        "web, relay running": spawn("gpuq_web", "--port", str(port)),
        "web, no client (baseline)": spawn("gpuq_web", "--port", str(port + 1)),
        "node": spawn("gpuq_node", GPUQ_NODE_NAME=name, GPUQ_DATA_DIR=str(Path(data) / "node")),
        "bare django-q2 cluster (baseline)": spawn(
            "qcluster",
            Q_CLUSTER_NAME=f"{name}-bare",
            GPUQ_Q_BROKER_CLASS="",  # django-q2's own ORM broker
        ),
    }
    base = f"http://127.0.0.1:{port}"
    try:
        web = logged_in(base, name, "idle-bench-only")
        cookie = "; ".join(f"{k}={v}" for k, v in web.cookies.items())
        with connect(
            f"ws://127.0.0.1:{port}/ws/events", additional_headers={"Cookie": cookie, "Origin": base}
        ) as socket:
            assert json.loads(socket.recv(timeout=10))["kind"] == "hello"
            time.sleep(args.warmup)  # startup, the node's first inventory and ticks
            for label, process in processes.items():
                if process.poll() is not None:
                    raise SystemExit(f"{label} exited ({process.returncode})")
            before = {label: cpu_seconds(p.pid) for label, p in processes.items()}
            time.sleep(args.seconds)
            after = {label: cpu_seconds(p.pid) for label, p in processes.items()}
            # Connections: a second window with the baselines frozen, so what opens is gpuq's own.
            for label, process in processes.items():
                if "baseline" in label:
                    os.killpg(process.pid, signal.SIGSTOP)
            opened = sessions(connection)
            time.sleep(args.seconds / 2)
            # (this process's own connection is open already: it adds no session)
            opened = None if opened is None else sessions(connection) - opened
    finally:
        for process in processes.values():
            try:
                os.killpg(process.pid, signal.SIGTERM)
                os.killpg(process.pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        for process in processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)

    per_minute = {label: (after[label] - before[label]) * 60 / args.seconds for label in processes}
    print(
        f"idle cost ({connection.vendor}, {args.waiting:,} jobs waiting), {args.seconds:.0f} s after a "
        f"{args.warmup:.0f} s warm-up:"
    )
    for label, cost in per_minute.items():
        print(f"  {label:36} {cost:6.2f} CPU-s/min ({cost / 60 * 100:5.2f}% of a core)")
    if opened is not None:
        print(
            f"  database connections opened by the web process with its relay and the node, "
            f"{args.seconds / 2:.0f} s (baselines stopped): {opened}"
        )
    print(
        "ratios: web with relay / web without client "
        f"{per_minute['web, relay running'] / max(per_minute['web, no client (baseline)'], 1e-9):.2f}x, "
        f"node / bare django-q2 cluster "
        f"{per_minute['node'] / max(per_minute['bare django-q2 cluster (baseline)'], 1e-9):.2f}x"
    )


if __name__ == "__main__":
    main()
