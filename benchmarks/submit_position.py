"""What the queue position in the submit answer costs: POST /api/v1/jobs with N jobs waiting, with the
position (one COUNT of the planned pending jobs ahead of it), against the same submit without it (the answer before
issue 12) and with a read of the stored plan (what GET /queue/position reads), in the same
run and process, through Django's whole request stack (no network).

    .venv/bin/python benchmarks/submit_position.py [--jobs 2000] [--repeat 15] [--database-url postgres://…/empty_db]
"""

import argparse
import os
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import percentile, setup_django  # noqa: E402
from pages import populate  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()
    os.environ.update(GPUQ_THROTTLE_SUBMIT="", GPUQ_THROTTLE_USER="")
    setup_django("gpuq-bench-submit-", args.database_url)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from accounts.models import Level, Profile
    from scheduling import listing

    settings.ALLOWED_HOSTS = ["*"]
    call_command("migrate", verbosity=0)
    populate(args.jobs)
    root = get_user_model().objects.create_superuser(username="root", password="x", email="")
    Profile.objects.create(user=root, level=Level.ADMIN)
    api = APIClient()
    api.force_authenticate(root)

    def submit_times(repeat: int) -> list[float]:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            response = api.post("/api/v1/jobs", {"argv": ["/bin/echo", "x"], "gpu_count": 8}, format="json")
            times.append(time.perf_counter() - started)
            assert response.status_code == 201, response.content[:300]
        return times

    whole_plan = lambda job: listing.plan().positions.get(job.pk)  # noqa: E731
    cases = [
        ("without a position (baseline)", lambda job: None),
        ("with the position (one COUNT)", listing.position_of),
        ("with the stored plan", whole_plan),
    ]
    print(f"{args.jobs} waiting jobs ({settings.DATABASES['default']['ENGINE']}), {args.repeat} submits each")
    print(f"{'POST /api/v1/jobs':40} {'p50 ms':>8} {'p95 ms':>8}")
    p50 = {}
    for name, position in cases:
        with mock.patch.object(listing, "position_of", position):
            times = submit_times(args.repeat)
        p50[name] = percentile(times, 50) * 1000
        print(f"{name:40} {p50[name]:8.0f} {percentile(times, 95) * 1000:8.0f}")
    base = p50["without a position (baseline)"]
    print(
        f"submit with position / without = {p50['with the position (one COUNT)'] / base:.2f}x; "
        f"with the stored plan / without = {p50['with the stored plan'] / base:.2f}x"
    )


if __name__ == "__main__":
    main()
