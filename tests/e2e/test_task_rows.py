"""django-q2's queue rows of executor tasks whose attempt is over are removed: a worker killed mid-task
never acknowledges its task, and without gpuq its row would stay in the queue table for ever."""

import os
import signal

import pytest
from django_q.models import OrmQ

from scheduling.models import Job
from scheduling.states import Status
from tests.conftest import JOB_PYTHON, api_for, wait_for
from tests.e2e.conftest import proc_stat

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def task_rows(job_id: int, token: str) -> list[OrmQ]:
    return [row for row in OrmQ.objects.all() if tuple(row.task.get("args") or ()) == (job_id, token)]


def test_the_row_of_a_task_whose_worker_was_killed_goes_once_its_attempt_is_over(root, start_node):
    start_node("rows")
    code = "import os, time; time.sleep(600 if os.environ['GPUQ_ATTEMPT'] == '1' else 0)"
    job_id = (
        api_for(root).post("/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", code]}, format="json").json()["id"]
    )
    job = wait_for(
        lambda: Job.objects.filter(pk=job_id, status=Status.RUNNING, pid__isnull=False).first(),
        timeout=30,
        message="the job to run",
    )
    first_token = job.lease_token
    assert task_rows(job_id, first_token)  # taken by its worker, not yet acknowledged
    worker = int(proc_stat(job.pid)[1])  # the job's parent: the django-q2 worker running the task
    os.kill(worker, signal.SIGKILL)

    # The reaper requeues the job, attempt 2 runs and ends; the killed worker's row goes too.
    wait_for(
        lambda: Job.objects.get(pk=job_id).status == Status.COMPLETED,
        timeout=60,
        message="the second attempt to complete",
    )
    assert Job.objects.get(pk=job_id).attempt == 2
    wait_for(lambda: not task_rows(job_id, first_token), timeout=30, message="the killed worker's row to go")
    wait_for(lambda: not OrmQ.objects.exists(), timeout=30, message="an empty queue table")
