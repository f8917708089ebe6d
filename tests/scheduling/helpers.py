"""Helpers for tests that dispatch jobs and run the executor in this process."""

import threading

from django.db import connection

from scheduling import executor
from scheduling.models import Job
from scheduling.tick import tick
from tests.conftest import JOB_PYTHON

PY = JOB_PYTHON  # jobs may run as another account (nobody) that cannot run the venv's interpreter


def dispatch(job: Job) -> Job:
    """Let a real tick place and dispatch the job; return it fresh (with its lease token)."""
    tick()
    job.refresh_from_db()
    assert job.status == "dispatched", (job.status, job.wait_reason, job.wait_detail)
    return job


def run_in_thread(job: Job) -> tuple[threading.Thread, list]:
    """Run the executor for the job's attempt in a thread, as a django-q2 worker would."""
    result: list = []

    def target():
        try:
            result.append(executor.run_job(job.pk, job.lease_token))
        finally:
            connection.close()

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    return thread, result
