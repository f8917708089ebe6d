"""The chaos test at a scale of your choosing, on a fresh SQLite database (or DATABASE_URL's PostgreSQL,
whose tables it must be free to fill): node processes run jobs while executor workers, job processes,
nodes and tick processes are killed with SIGKILL at random. Prints the report; exits 1 if a promise broke.

    .venv/bin/python benchmarks/chaos.py [--jobs 500] [--kills 50] [--nodes 4] [--gpus 2] [--seed 0]
"""

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=2, help="GPUs per node")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=1800)
    args = parser.parse_args()

    data = Path(tempfile.mkdtemp(prefix="gpuq-chaos-"))
    data.chmod(0o711)  # jobs of a root node run as `nobody` and cross it to their folders
    os.environ.update(
        GPUQ_DATA_DIR=str(data), GPUQ_LOG_LEVEL="ERROR", DJANGO_SETTINGS_MODULE="queueproject.settings"
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from tests.e2e import chaos

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser(f"chaos-{os.getpid()}", password="chaos-only", email="")
    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}  # one key for every process of this gpuq
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    print(
        f"chaos: {args.jobs} jobs, {args.kills} kills, {args.nodes} nodes × {args.gpus} GPUs ({connection.vendor}, {data})"
    )
    report = chaos.run(
        user=user,
        jobs=args.jobs,
        kills=args.kills,
        workdir=data / "chaos",
        env=env,
        nodes=args.nodes,
        gpus_per_node=args.gpus,
        seed=args.seed,
        timeout=args.timeout,
    )
    print(report)
    print("OK: every promise kept" if report.ok else "BROKEN: see above")
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
