"""Remove django-q2 queue rows of executor tasks whose attempt is over.

The ORM broker deletes a task's row when its worker acknowledges it; a worker killed mid-task never does,
and with our `retry` of years the row is never delivered again either, so it would stay for ever. A task
is `run_job(job_id, token)`: once the job no longer holds GPUs under that token (the attempt ended,
was recovered or re-dispatched), its row is useless and goes. Rows that do not decode are django-q2's.
"""

import logging

from django.conf import settings
from django_q.models import OrmQ

from scheduling.models import Job
from scheduling.states import HOLDS_GPUS

log = logging.getLogger("gpuq.taskqueue")

EXECUTOR_TASK = "scheduling.executor.run_job"


def prune_finished_tasks() -> int:
    """Delete the queue rows of executor tasks whose attempt is over; returns how many."""
    if not settings.Q_CLUSTER.get("orm"):
        return 0  # another broker keeps no rows here
    attempts: dict[int, tuple[int, str]] = {}
    for row in OrmQ.objects.only("id", "payload"):
        task = row.task
        args = task.get("args") or ()
        if task.get("func") == EXECUTOR_TASK and len(args) == 2:
            attempts[row.pk] = (int(args[0]), str(args[1]))
    if not attempts:
        return 0
    live = set(
        Job.objects.filter(
            pk__in={job_id for job_id, _ in attempts.values()}, status__in=HOLDS_GPUS
        ).values_list("pk", "lease_token")
    )
    over = [pk for pk, attempt in attempts.items() if attempt not in live]
    if over:
        OrmQ.objects.filter(pk__in=over).delete()
        log.info("removed %d queue row(s) of executor tasks whose attempt is over", len(over))
    return len(over)
