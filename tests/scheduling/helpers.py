"""Helpers for tests that dispatch jobs and run the executor in this process."""

import threading

from django.db import connection

from scheduling import executor, ticker
from scheduling.models import Attempt, Job
from scheduling.states import Status
from tests.conftest import JOB_PYTHON

PY = JOB_PYTHON  # jobs may run as another account (nobody) that cannot run the venv's interpreter


def dispatch(job: Job) -> Job:
    """Let a real tick place and dispatch the job; return it fresh (with its lease token). The tick
    runs under the ticker's lock: in a transactional test a change's ask wakes this process's ticker
    thread, and two ticks at once would dispatch the job twice (`dispatched → dispatched`)."""
    ticker.run(force=True, wait=True)
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


def running_attempt(job_id: int) -> Attempt | None:
    """The job's open attempt once its job is running and its process is recorded, else None."""
    return (
        Attempt.objects.filter(
            job_id=job_id, ended_at__isnull=True, pid__isnull=False, job__status=Status.RUNNING
        )
        .select_related("job")
        .first()
    )
