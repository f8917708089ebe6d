"""A real database outage under a real node (PostgreSQL only: connections to the test database are
refused and cut for longer than a take-over time; CI runs the suite on both databases)."""

import time

import psycopg
import pytest
from django.conf import settings
from django.db import connection

from scheduling import leases
from scheduling.models import Attempt, Job
from scheduling.states import Status
from tests.conftest import job_writable, wait_for
from tests.e2e.conftest import stop
from tests.factories import make_job
from tests.scheduling.helpers import running_attempt
from tests.scheduling.test_attempts import waits_for

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"),
        reason="refuses connections with ALTER DATABASE: PostgreSQL only (CI runs both databases)",
    ),
]


def allow_connections(allowed: bool) -> None:
    db = connection.settings_dict
    admin = psycopg.connect(
        dbname="postgres",
        user=db["USER"],
        host=db["HOST"] or "localhost",
        port=db["PORT"] or 5432,
        autocommit=True,
    )
    try:
        admin.execute(f'ALTER DATABASE "{db["NAME"]}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [db["NAME"]]
            )
    finally:
        admin.close()


def test_a_job_that_completes_during_an_outage_is_recorded_when_the_database_is_back_and_never_reruns(
    root, start_node, tmp_path
):
    start_node()
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    job = make_job(root, argv=waits_for(marker, runs))
    from scheduling.transitions import record_creation

    record_creation(job)
    wait_for(lambda: running_attempt(job.pk), timeout=30, message="the job to run")
    wait_for(runs.exists, timeout=30, message="the job to start its work")
    # The node's settings (tests/e2e/conftest.py): lease 3 s, grace 2 s, margin 1.5 s.
    take_over = leases.Margins(0.3, 3, 2, 1.5).reap_after
    connection.close()
    allow_connections(False)
    try:
        marker.touch()  # the job finishes while nobody can reach the database
        down = time.monotonic()
        wait_for(lambda: time.monotonic() - down > take_over + 3, timeout=60, message="a long outage")
    finally:
        allow_connections(True)
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, timeout=60, message="the outcome")
    assert runs.read_text() == "run\n"
    assert [(a.number, a.outcome) for a in Attempt.objects.filter(job=job)] == [(1, Status.COMPLETED)]
    assert Job.objects.get(pk=job.pk).faults == 0


def test_an_outcome_kept_on_disk_is_recorded_when_its_node_starts_again_after_the_outage(
    root, start_node, tmp_path
):
    node = start_node()
    marker, runs = job_writable(tmp_path / "out") / "go", tmp_path / "out" / "runs"
    job = make_job(root, argv=waits_for(marker, runs))
    from scheduling.transitions import record_creation

    record_creation(job)
    attempt = wait_for(lambda: running_attempt(job.pk), timeout=30, message="the job to run")
    wait_for(runs.exists, timeout=30, message="the job to start its work")
    kept = tmp_path / "logs" / f"job-{job.pk}.outcome-{attempt.lease_token}.json"
    connection.close()
    allow_connections(False)
    try:
        marker.touch()  # the job finishes while nobody can reach the database ...
        wait_for(kept.exists, timeout=30, message="the executor to keep the outcome on disk")
        stop(node)  # ... and its node is stopped before the database is back: the executor dies
        assert kept.exists()
    finally:
        allow_connections(True)
    start_node()
    wait_for(lambda: Job.objects.get(pk=job.pk).status == Status.COMPLETED, timeout=60, message="the outcome")
    assert runs.read_text() == "run\n"
    assert [(a.number, a.outcome) for a in Attempt.objects.filter(job=job)] == [(1, Status.COMPLETED)]
    wait_for(lambda: not kept.exists(), message="the kept outcome to be dropped once recorded")
