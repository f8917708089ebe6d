"""The queue page and GET /api/v1/queue at 10,000 waiting jobs: time (p50, p95), bytes (raw and gzip) and
queries per request, paged (what gpuq serves) against unpaged (every waiting job in one answer, as gpuq
served them before paging), in the same run and process, through Django's whole request stack (no
network). The reader is a researcher with 200 of the jobs.

    .venv/bin/python benchmarks/pages.py [--jobs 10000] [--repeat 15] [--database-url postgres://…/empty_db]
"""

import argparse
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, register_nodes, setup_django  # noqa: E402


def populate(n: int) -> object:
    from django.contrib.auth import get_user_model

    from accounts.models import Level, Profile, Team
    from scheduling.models import Job, JobTemplate
    from scheduling.states import Status

    rng = random.Random(11)
    teams = [Team.objects.create(name=f"team{i}") for i in range(5)]
    users = []
    for i in range(50):
        user = get_user_model().objects.create_user(username=f"user{i}", password="x")
        Profile.objects.create(user=user, level=Level.RESEARCHER, team=teams[i % 5])
        users.append(user)
    reader = users[0]
    template = JobTemplate.objects.create(name="train", argv_template=["/bin/echo", "{m}"])
    register_nodes(4)
    now = datetime.now(UTC)
    jobs = []
    for i in range(n):
        owner = reader if i < 200 else users[1 + i % 49]
        submitted = now - timedelta(seconds=n - i)
        jobs.append(
            Job(
                owner=owner,
                team=teams[users.index(owner) % 5],
                name=f"sweep-{i}",
                template=template if i % 2 else None,
                argv=["/bin/echo", str(i)],
                gpu_count=rng.choice((1, 1, 2, 4, 8)),
                priority=rng.choice((0, 10, 10, 20)),
                status=Status.PENDING,
                wait_reason="resources",
                wait_detail="waiting for free GPUs",
                submitted_at=submitted,
                queue_order=submitted.timestamp(),
            )
        )
    Job.objects.bulk_create(jobs, batch_size=1000)
    return reader


def measure(client, path: str, repeat: int, change: bool = False) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from scheduling import events

    times = []
    for _ in range(repeat):
        if change:  # an event before each read: the plan cannot be reused
            events.emit_queue(0)
        started = time.perf_counter()
        response = client.get(path)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (path, response.status_code)
    raw = len(response.content)
    if change:
        events.emit_queue(0)
    with CaptureQueriesContext(connection) as queries:
        zipped = client.get(path, HTTP_ACCEPT_ENCODING="gzip")
    assert zipped.get("Content-Encoding") == "gzip"
    return {
        "p50": percentile(times, 50) * 1000,
        "p95": percentile(times, 95) * 1000,
        "raw": raw,
        "gzip": len(zipped.content),
        "queries": len(queries),
    }


def print_plan_cost() -> None:
    """What every read of the queue pays before it reads a row: the plan (order and estimates)."""
    from django.utils import timezone

    from scheduling import planner, selectors
    from scheduling.estimates import estimate_starts

    now = timezone.now()
    t0 = time.perf_counter()
    snap = selectors.snapshot(now)
    t1 = time.perf_counter()
    planner.queue_order(snap, now)
    t2 = time.perf_counter()
    estimate_starts(snap, now)
    t3 = time.perf_counter()
    print(
        f"the plan of one read: snapshot {1000 * (t1 - t0):.0f} ms, order {1000 * (t2 - t1):.0f} ms, "
        f"estimates {1000 * (t3 - t2):.0f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    # Unpaged is the same code asked for every row at once: lift the cap on the page size for this run.
    os.environ["GPUQ_MAX_PAGE_SIZE"] = str(args.jobs * 2)
    setup_django("gpuq-bench-pages-", args.database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.test import Client
    from rest_framework.test import APIClient

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    reader = populate(args.jobs)
    print(
        f"{args.jobs} waiting jobs made in {time.perf_counter() - started:.1f} s ({settings.DATABASES['default']['ENGINE']})"
    )

    page = Client()
    page.force_login(reader)
    api = APIClient()
    api.force_authenticate(reader)
    cases = [
        ("queue page, paged (50)", page, "/", args.repeat),
        ("queue page, paged, a change before each", page, "/", args.repeat, True),
        ("queue page fragment, paged (50)", page, "/?fragment=1", args.repeat),
        ("queue page, searched (q=sweep-99)", page, "/?q=sweep-99", args.repeat),
        ("queue page, unpaged (baseline)", page, f"/?size={args.jobs}", max(3, args.repeat // 5)),
        ("my jobs, paged (50)", page, "/me/", args.repeat),
        ("GET /api/v1/queue?limit=50", api, "/api/v1/queue?limit=50", args.repeat),
        ("GET /api/v1/queue?limit=50, a change before", api, "/api/v1/queue?limit=50", args.repeat, True),
        (
            "GET /api/v1/queue, unpaged (baseline)",
            api,
            f"/api/v1/queue?limit={args.jobs}",
            max(3, args.repeat // 5),
        ),
        ("GET /api/v1/jobs (50)", api, "/api/v1/jobs", args.repeat),
    ]
    print_plan_cost()
    print(f"{'request':44} {'p50 ms':>8} {'p95 ms':>8} {'bytes':>10} {'gzip':>9} {'queries':>8}")
    results = {}
    for name, client, path, repeat, *change in cases:
        r = measure(client, path, repeat, *change)
        results[name] = r
        print(f"{name:44} {r['p50']:8.0f} {r['p95']:8.0f} {r['raw']:10,} {r['gzip']:9,} {r['queries']:8}")
    paged, unpaged = results["queue page, paged (50)"], results["queue page, unpaged (baseline)"]
    print(
        f"queue page: unpaged / paged = {unpaged['p50'] / paged['p50']:.1f}x time, "
        f"{unpaged['raw'] / paged['gzip']:.0f}x bytes (unpaged raw vs paged gzip)"
    )
    paged, unpaged = results["GET /api/v1/queue?limit=50"], results["GET /api/v1/queue, unpaged (baseline)"]
    print(f"/api/v1/queue: unpaged / paged = {unpaged['p50'] / paged['p50']:.1f}x time")


if __name__ == "__main__":
    main()
