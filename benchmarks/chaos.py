"""The long fault suite: node processes (each its own machine: own boot id and data folder) run jobs on
PostgreSQL with the production lease settings while executor workers, job processes, nodes and the ticker
are SIGKILLed, the database's connections are cut (pg_terminate_backend), the database goes away behind a
TCP proxy (--outages), PostgreSQL is restarted (`-m immediate`, as root), nodes are frozen (SIGSTOP) past
their node timeout, then resumed, and the whole gpuq (web, nodes, ticker) is SIGKILLed and started again
(--gpuq-kills); nodes may run with skewed wall clocks (--skew: GPUQ_CLOCK_OFFSET_SECONDS). Faults are spread over the run
(submission is one transaction a few hundred jobs). Each job records its start and end with its pid; the
checks read those records and the database: 0 lost, 0 overlapping executions, every re-run an Attempt row
with a reason, no completed job run again, 0 GPUs held by finished jobs, 0 stray processes, the web serving
at the end, every skewed clock seen off. Prints the faults made against those asked; exits 1 when fewer
were made or a promise broke.

    .venv/bin/python benchmarks/chaos.py --database-url postgres://…/empty_db --all [--jobs 1000]
        [--kills 200] [--restarts 3] [--freezes 5] [--outages 0] [--skew 60] [--nodes 4] [--gpus 2]

--all: every fault kind in one run (--kills of each SIGKILL kind, of connection cuts and of whole-gpuq
kills, unless a kind's own flag says otherwise), clocks skewed by --skew (default 60 s: one node ahead,
one behind). The database is migrated and filled: give it an empty one. Without --database-url it runs on
SQLite with the SIGKILLs only (the database faults need PostgreSQL).
"""

import argparse
import os
import secrets
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import setup_django  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL", ""))
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=200, help="faults of each kind below (unless given)")
    for kind in ("worker", "job", "node", "tick", "connection", "gpuq"):
        parser.add_argument(f"--{kind}-kills", type=int, default=None)
    parser.add_argument("--all", action="store_true", help="every fault kind in one run (see above)")
    parser.add_argument("--outages", type=int, default=0, help="database outages through a TCP proxy")
    parser.add_argument("--outage-seconds", type=float, default=8, help="longest outage (shortest: 1 s)")
    parser.add_argument(
        "--skew", type=float, default=None, help="seconds: node 0's clock ahead, node 1's behind (--all: 60)"
    )
    parser.add_argument("--restarts", type=int, default=3, help="PostgreSQL restarts (-m immediate)")
    parser.add_argument(
        "--restarts-from",
        type=float,
        default=0,
        help="make no restart before this many seconds into the run (a PostgreSQL shared with others)",
    )
    parser.add_argument("--freezes", type=int, default=5, help="nodes frozen past their node timeout")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs per node")
    parser.add_argument("--mean-duration", type=float, default=3.0, help="mean job length, seconds")
    parser.add_argument("--max-attempts", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=4 * 3600)
    parser.add_argument("--lease", type=float, help="GPUQ_LEASE_SECONDS (default: the setting's)")
    parser.add_argument("--heartbeat", type=float, help="GPUQ_HEARTBEAT_SECONDS (default: the setting's)")
    parser.add_argument("--grace", type=float, help="GPUQ_KILL_GRACE_SECONDS (default: the setting's)")
    parser.add_argument("--margin", type=float, help="GPUQ_LEASE_MARGIN_SECONDS (default: the setting's)")
    parser.add_argument(
        "--node-timeout", type=float, help="GPUQ_NODE_TIMEOUT_SECONDS (default: the setting's)"
    )
    args = parser.parse_args()
    lease_env = {
        name: str(value)
        for name, value in (
            ("GPUQ_LEASE_SECONDS", args.lease),
            ("GPUQ_HEARTBEAT_SECONDS", args.heartbeat),
            ("GPUQ_KILL_GRACE_SECONDS", args.grace),
            ("GPUQ_LEASE_MARGIN_SECONDS", args.margin),
            ("GPUQ_NODE_TIMEOUT_SECONDS", args.node_timeout),
        )
        if value is not None
    }
    os.environ.update(lease_env)  # this process's settings too: the freeze lengths are derived from them

    # One key for every process of this gpuq (the nodes inherit it).
    os.environ.setdefault("SECRET_KEY", secrets.token_urlsafe(50))
    data = Path(setup_django("gpuq-chaos-", args.database_url))
    data.chmod(0o711)  # jobs of a root node run as `nobody` and cross it to their folders
    os.environ["GPUQ_LOG_LEVEL"] = "ERROR"
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from scheduling import leases
    from tests.e2e import faults

    postgres = connection.vendor == "postgresql"
    if not postgres and (args.restarts or args.freezes or args.connection_kills != 0):
        print("SQLite: database faults and frozen nodes need PostgreSQL; SIGKILLs only")
    kinds = ("worker", "job", "node", "tick", "connection", "gpuq")
    asked = {kind: getattr(args, f"{kind}_kills") for kind in kinds}
    # Whole-gpuq kills only when asked for, or in the all-faults run.
    asked = {k: (args.kills if k != "gpuq" or args.all else 0) if n is None else n for k, n in asked.items()}
    asked.update(restart=args.restarts, freeze=args.freezes, outage=args.outages)
    skew = args.skew if args.skew is not None else (60.0 if args.all else 0.0)
    if not postgres:
        asked.update(connection=0, restart=0, freeze=0, outage=0)
    if asked["restart"] and os.geteuid() != 0:
        parser.error("--restarts needs root (pg_ctlcluster)")
    if asked["restart"]:  # the cluster that holds the database, found by its port (pg_lsclusters)
        try:
            version, name = faults.postgresql_cluster(int(connection.settings_dict["PORT"] or 5432))
        except LookupError as error:
            parser.error(f"--restarts: {error}")
        print(f"chaos: restarts PostgreSQL cluster {version}/{name}", flush=True)

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser(f"chaos-{os.getpid()}", password="chaos-only", email="")
    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}  # one key for every process of this gpuq
    if not postgres:
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    # A frozen node stays stopped past its node timeout (it is marked offline), but not past the
    # take-over time L + G + M, beyond which the README's limit applies (its old process runs on for a
    # moment when it resumes, until its executor stops it).
    take_over = leases.Margins(
        settings.GPUQ_HEARTBEAT_SECONDS,
        settings.GPUQ_LEASE_SECONDS,
        settings.GPUQ_KILL_GRACE_SECONDS,
        settings.GPUQ_LEASE_MARGIN_SECONDS,
    ).reap_after
    low = settings.GPUQ_NODE_TIMEOUT_SECONDS + 2
    freeze_seconds = (min(low, take_over - 2), max(min(low, take_over - 2), take_over - 2))
    print(
        f"chaos: {args.jobs} jobs on {args.nodes} nodes × {args.gpus} GPUs ({connection.vendor}, {data}); "
        f"lease {settings.GPUQ_LEASE_SECONDS} s, heartbeat {settings.GPUQ_HEARTBEAT_SECONDS} s, grace "
        f"{settings.GPUQ_KILL_GRACE_SECONDS} s, margin {settings.GPUQ_LEASE_MARGIN_SECONDS} s, node timeout "
        f"{settings.GPUQ_NODE_TIMEOUT_SECONDS} s (take-over {take_over:.0f} s; freezes "
        f"{freeze_seconds[0]:.0f}-{freeze_seconds[1]:.0f} s); clocks skewed {skew:+g} s (node 0) and "
        f"{-skew:+g} s (node 1); faults asked {asked}",
        flush=True,
    )
    report = faults.run(
        user=user,
        jobs=args.jobs,
        asked=asked,
        workdir=data / "chaos",
        env=env,
        lease_env=lease_env,
        nodes=args.nodes,
        gpus_per_node=args.gpus,
        seed=args.seed,
        timeout=args.timeout,
        max_attempts=args.max_attempts,
        freeze_seconds=freeze_seconds,
        outage_seconds=(1, args.outage_seconds),
        skews={0: skew, 1: -skew} if skew and args.nodes > 1 else {},
        web=args.all,
        mean_duration=args.mean_duration,
        restarts_from=args.restarts_from,
        log=lambda line: print(line, flush=True),
    )
    print(report)
    if report.short:
        print(f"SHORT: fewer faults than asked {report.short}")
    print("OK: every promise kept, every fault made" if report.ok else "BROKEN: see above")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
