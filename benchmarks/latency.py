"""Submit-to-running latency on the embedded default (SQLite, one local node, a free GPU).

Starts a real `gpuq_node` (with its django-q2 cluster) on a fresh SQLite database in a temporary folder,
submits jobs one at a time through the same service the API calls, and measures from the submit call to
the job's `running` transition. Then the same with event-driven ticks switched off in this process, so
jobs start only at the node's periodic tick every 2 s: the polling design of the reference queues, as a
baseline measured in the same run.

    .venv/bin/python benchmarks/latency.py [--jobs 50] [--baseline-jobs 20]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import percentile  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    parser.add_argument("--baseline-jobs", type=int, default=20)
    args = parser.parse_args()

    data = tempfile.mkdtemp(prefix="gpuq-bench-")
    os.chmod(data, 0o711)  # jobs of a root node run as `nobody` and cross it to their folders
    os.environ.update(
        GPUQ_DATA_DIR=data, GPUQ_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="queueproject.settings"
    )
    os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from gpus.models import Node
    from scheduling.models import Job
    from scheduling.services import job_submit

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench", password="bench-only", email="")
    node_env = {
        **os.environ,
        "GPUQ_NODE_NAME": "bench",
        "GPUQ_INVENTORY": "declared",
        "GPUQ_TICK_SECONDS": "2",
    }
    node = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "gpuq_node"],
        env=node_env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )

    def run_one() -> float:
        submitted = time.time()
        job = job_submit(user=user, argv=["true"])
        deadline = time.monotonic() + 30
        while True:
            row = Job.objects.filter(pk=job.pk).values("status", "started_at").first()
            if row["status"] == "completed":
                return row["started_at"].timestamp() - submitted
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job.pk} did not complete: {row['status']}")
            time.sleep(0.01)

    try:
        while not Node.objects.filter(name="bench").exists():
            time.sleep(0.1)
        for _ in range(3):  # warm up: the cluster's workers start, the first imports happen
            run_one()
        event = [run_one() for _ in range(args.jobs)]
        settings.GPUQ_EVENT_TICKS = False
        polling = [run_one() for _ in range(args.baseline_jobs)]
    finally:
        node.terminate()
        node.wait(timeout=30)

    def line(name, values):
        return (
            f"{name:<34} n={len(values):<3} p50={statistics.median(values) * 1000:7.1f} ms  "
            f"p95={percentile(values, 95) * 1000:7.1f} ms  max={max(values) * 1000:7.1f} ms"
        )

    print("submit → running latency, embedded default (SQLite, 1 node, declared GPUs)")
    print(line("gpuq (event-driven ticks)", event))
    print(line("baseline (2 s periodic tick only)", polling))
    print(f"ratio of p50s, baseline / gpuq: {statistics.median(polling) / statistics.median(event):.1f}x")


if __name__ == "__main__":
    main()
