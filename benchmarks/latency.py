"""Submit-to-running latency with a free GPU, against bare django-q2 with the same broker and poll.

Starts a real `gpuq_node` (with its django-q2 cluster) on a fresh database (SQLite in a temporary folder;
with DATABASE_URL set to PostgreSQL, a fresh database on that server, dropped at the end), submits jobs
one at a time through the service the API calls, and measures from the submit call to the job's
`running` transition: the change asks for a tick, this process's ticker thread plans and dispatches, the
node's cluster picks the task up. The baseline, measured in the same run and interleaved with it: a bare
`async_task` to the same cluster (same broker, same poll), from the call to the moment its worker starts
the task (django-q2's own `stopped` of an instant task). It also prints where gpuq's time goes (the
submission, the ticker, the tick until the dispatch, the dispatch until the executor's claim), for the
jobs this process's ticker ticked.

    .venv/bin/python benchmarks/latency.py [--jobs 50]
    DATABASE_URL=postgres://postgres@127.0.0.1:5432/gpuq .venv/bin/python benchmarks/latency.py
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

from _common import ROOT, fresh_database_url, percentile, setup_django  # benchmarks/ is on sys.path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=50)
    args = parser.parse_args()

    data = setup_django("gpuq-bench-", fresh_database_url())
    os.chmod(data, 0o711)  # jobs of a root node run as `nobody` and cross it to their folders
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django_q.models import Task
    from django_q.tasks import async_task

    from gpus.models import Node
    from scheduling import tick as tick_module
    from scheduling import ticker
    from scheduling.models import Job, JobStateTransition
    from scheduling.services import job_submit

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create_superuser("bench", password="bench-only", email="")
    node_env = {
        **os.environ,
        "GPUQ_NODE_NAME": "bench",
        "GPUQ_INVENTORY": "declared",
    }
    node = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "gpuq_node"],
        env=node_env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )

    dispatched = []  # submit → dispatched: the ask and the tick
    # Where the time goes, for the jobs this process's ticker thread ticked (the node's periodic tick may
    # tick one instead): marks from the ticker's run and the tick, read against the dispatch's time.
    steps = {step: [] for step in STEPS}
    marks = {}
    _mark_calls(ticker, "run", marks, "ticker")
    _mark_calls(tick_module, "tick", marks, "tick")

    def run_one() -> float:
        marks.clear()
        submitted = time.time()
        job = job_submit(user=user, argv=["true"])
        returned = time.time()
        deadline = time.monotonic() + 30
        while True:
            row = Job.objects.filter(pk=job.pk).values("status", "started_at").first()
            if row["status"] == "completed":
                at = JobStateTransition.objects.get(job_id=job.pk, to_status="dispatched").at.timestamp()
                dispatched.append(at - submitted)
                if "tick" in marks:
                    for step, seconds in zip(
                        STEPS,
                        (
                            returned - submitted,
                            marks["ticker"] - returned,
                            marks["tick"] - marks["ticker"],
                            at - marks["tick"],
                            row["started_at"].timestamp() - at,
                        ),
                        strict=True,
                    ):
                        steps[step].append(seconds)
                return row["started_at"].timestamp() - submitted
            if time.monotonic() > deadline:
                raise SystemExit(f"job {job.pk} did not complete: {row['status']}")
            time.sleep(0.005)

    def bare_one(queue: str) -> float:
        submitted = time.time()
        task_id = async_task("math.floor", 1.5, cluster=queue)
        deadline = time.monotonic() + 30
        while True:
            # django-q2's `started` is the enqueue time; `stopped`, when its worker ran it (an instant task).
            ran = Task.objects.filter(id=task_id).values_list("stopped", flat=True).first()
            if ran is not None:
                return ran.timestamp() - submitted
            if time.monotonic() > deadline:
                raise SystemExit(f"task {task_id} did not run")
            time.sleep(0.005)

    try:
        while not Node.objects.filter(name="bench").exists():
            time.sleep(0.1)
        queue = Node.objects.get(name="bench").queue_name
        for _ in range(3):  # warm up: the cluster's workers start, the first imports happen
            run_one()
            bare_one(queue)
        gpuq, bare = [], []
        for _ in range(args.jobs):  # interleaved: both see the same load on the machine
            gpuq.append(run_one())
            bare.append(bare_one(queue))
    finally:
        node.terminate()
        node.wait(timeout=30)

    def line(name, values):
        return (
            f"{name:<34} n={len(values):<3} p50={statistics.median(values) * 1000:7.1f} ms  "
            f"p95={percentile(values, 95) * 1000:7.1f} ms  max={max(values) * 1000:7.1f} ms"
        )

    print(f"submit → running latency, free GPU ({connection.vendor}, 1 node, declared GPUs)")
    print(line("gpuq (ask, ticker, executor)", gpuq))
    print(line("  of which submit → dispatched", dispatched[-len(gpuq) :]))
    print(line("bare django-q2 async_task", bare))
    print(f"where gpuq's time goes, p50 of the {len(steps[STEPS[0]])} jobs this process's ticker ticked:")
    for step, values in steps.items():
        if values:
            print(f"  {step:<68} {statistics.median(values) * 1000:6.1f} ms")
    print(f"ratio of p50s, gpuq / bare django-q2: {statistics.median(gpuq) / statistics.median(bare):.2f}x")
    print(f"ratio of p95s, gpuq / bare django-q2: {percentile(gpuq, 95) / percentile(bare, 95):.2f}x")


STEPS = (
    "the submission (its transaction, and the ask)",
    "the ask → the ticker thread runs",
    "the ticker's lock and counts → the tick starts",
    "the tick → the dispatch's transition (snapshot, plan, dispatch)",
    "the dispatch → the executor's claim (commit, task, pusher, worker)",
)


def _mark_calls(module, name: str, marks: dict, mark: str) -> None:
    """Note in `marks[mark]` when `module.name` is first called after `marks` was cleared."""
    real = getattr(module, name)

    def marked(*args, **kwargs):
        marks.setdefault(mark, time.time())
        return real(*args, **kwargs)

    setattr(module, name, marked)


if __name__ == "__main__":
    main()
