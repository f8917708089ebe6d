"""Bulk submission against single submissions: jobs per second through POST /api/v1/jobs, in one process.

Sets gpuq up on a fresh SQLite database in a temporary folder (or on the PostgreSQL database given with
--database-url, which it migrates and fills: give it an empty one), with one node of declared GPUs and a
template with two parameters. Then, through Django's whole request stack (DRF's test client: routing,
token authentication, serializers, services, one connection kept open; no network), it times:

1. the baseline: --singles single submissions, one request each, back to back;
2. bulk: lists of --batch jobs until --total jobs wait, each list timed alone, so the rate is shown
   from an empty queue to a full one (the issue's target: > 5,000 jobs/s on PostgreSQL, flat);
3. one template sweep of --batch parameter sets (a grid), the same way.

Throttles are off (they would stop the baseline). The tick a submission requests is off too unless
--inline-ticks: what is timed is the submission, not the planning of the queue (with the coalescing
ticker, a submission only asks for a tick; a bulk asks once).

    .venv/bin/python benchmarks/bulk.py [--singles 500] [--batch 1000] [--total 10000]
                                        [--inline-ticks] [--database-url URL]
"""

import argparse
import statistics
import time

from _common import register_nodes, setup_django  # benchmarks/ is on sys.path when run as a script


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--singles", type=int, default=500, help="single submissions (the baseline)")
    parser.add_argument("--batch", type=int, default=1000, help="jobs per bulk request")
    parser.add_argument("--total", type=int, default=10000, help="bulk jobs in all")
    parser.add_argument("--inline-ticks", action="store_true", help="run the requested tick after each")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    setup_django("gpuq-bench-bulk-", args.database_url)
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    call_command("migrate", verbosity=0)
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]  # the test client's host
    settings.GPUQ_THROTTLE_USER = settings.GPUQ_THROTTLE_SUBMIT = None
    settings.GPUQ_EVENT_TICKS = args.inline_ticks
    settings.GPUQ_BULK_MAX_JOBS = max(settings.GPUQ_BULK_MAX_JOBS, args.batch)
    client = _client()
    print(
        f"database: {connection.vendor}; ticks after each request: {'inline' if args.inline_ticks else 'off'}"
    )

    def job(i: int) -> dict:
        return {"template": "train", "params": {"lr": 1 / (i + 1), "bs": 32}}

    started = time.perf_counter()
    for i in range(args.singles):
        response = client.post("/api/v1/jobs", job(i), format="json")
        assert response.status_code == 201, response.content[:300]
    single_rate = args.singles / (time.perf_counter() - started)
    print(f"single submissions: {args.singles} jobs, {single_rate:,.0f} jobs/s")

    rates = []
    for first in range(0, args.total, args.batch):
        body = [job(i) for i in range(first, min(first + args.batch, args.total))]
        waiting = args.singles + first
        started = time.perf_counter()
        response = client.post("/api/v1/jobs", body, format="json")
        elapsed = time.perf_counter() - started
        assert response.status_code == 201, response.content[:300]
        rates.append(len(body) / elapsed)
        print(
            f"bulk of {len(body)} with {waiting:>6,} waiting: {elapsed * 1000:7.0f} ms, {rates[-1]:,.0f} jobs/s"
        )

    side = max(1, round(args.batch**0.5))
    grid = {"lr": [1 / (i + 1) for i in range(side)], "bs": list(range(1, args.batch // side + 1))}
    started = time.perf_counter()
    response = client.post("/api/v1/jobs", {"template": "train", "sweep": {"grid": grid}}, format="json")
    elapsed = time.perf_counter() - started
    assert response.status_code == 201, response.content[:300]
    size = response.json()["sweep"]["size"]
    sweep_rate = size / elapsed
    print(f"sweep of {size} (grid) with {args.singles + args.total:,} waiting: {sweep_rate:,.0f} jobs/s")

    median = statistics.median(rates)
    print(
        f"bulk: median {median:,.0f} jobs/s (first {rates[0]:,.0f}, last {rates[-1]:,.0f}, "
        f"last/first {rates[-1] / rates[0]:.2f}); vs single submissions x{median / single_rate:.1f}"
    )


def _client():
    """An admin's API client (token auth, as the CLI uses), a node to accept jobs, and the template."""
    from django.contrib.auth import get_user_model
    from rest_framework.test import APIClient

    from accounts.models import ApiToken, Level, Profile
    from scheduling.models import JobTemplate

    register_nodes(1, "8x80GB")
    user = get_user_model().objects.create_superuser(username="bench", password="pw-bench", email="")
    Profile.objects.create(user=user, level=Level.ADMIN)
    JobTemplate.objects.create(
        name="train",
        argv_template=["/bin/echo", "--lr", "{lr}", "--bs", "{bs}"],
        params_schema={
            "type": "object",
            "properties": {"lr": {"type": "number"}, "bs": {"type": "integer"}},
            "required": ["lr", "bs"],
        },
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {ApiToken.issue(user=user)[1]}")
    return client


if __name__ == "__main__":
    main()
