"""django-q2's queue on the database's clock, and the removal of queue rows of executor tasks whose attempt
is over.

django-q2's ORM broker stamps and reads its rows with each machine's own clock: a task enqueued by a
machine whose clock is S seconds ahead of the node's stays invisible to that node for S seconds (and a
dispatch is lost when S passes GPUQ_DISPATCH_TIMEOUT_SECONDS). `DatabaseClockBroker` (the base of
scheduling.broker.WakingORM, Q_CLUSTER's `broker_class`) takes every time from the database instead, like the leases.

The ORM broker deletes a task's row when its worker acknowledges it; a worker killed mid-task never does,
and with our `retry` of years the row is never delivered again either, so it would stay for ever. A task
is `run_job(job_id, token)`: once the job no longer holds GPUs under that token (the attempt ended,
was recovered or re-dispatched), its row is useless and goes. Rows that do not decode are django-q2's.
"""

import logging
import time
from datetime import timedelta

from django.conf import settings
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django_q.brokers.orm import ORM
from django_q.conf import Conf
from django_q.models import OrmQ

from scheduling.models import Job
from scheduling.states import HOLDS_GPUS

log = logging.getLogger("gpuq.taskqueue")

EXECUTOR_TASK = "scheduling.executor.run_job"
GANG_TASK = "scheduling.gang.run_part"


def _db_now(plus: float = 0):
    return ExpressionWrapper(Now() + timedelta(seconds=plus), output_field=DateTimeField())


class DatabaseClockBroker(ORM):
    """The ORM broker with every lock time from the database's clock, never a machine's own."""

    def timeout(self, task):
        return _db_now(Conf.RETRY)

    def queue_size(self) -> int:
        return self.get_connection().filter(key=self.list_key, lock__lte=_db_now()).count()

    def lock_size(self) -> int:
        return self.get_connection().filter(key=self.list_key, lock__gt=_db_now()).count()

    def enqueue(self, task):
        row = self.get_connection().create(key=self._queue(), payload=task, lock=_db_now())
        return row.pk

    def _queue(self) -> str:
        """The queue's name, as `enqueue` writes it into its rows' key."""
        return self.list_key or Conf.CLUSTER_NAME

    def dequeue(self):
        taken = self.claim(self.get_connection())
        if taken is not None:
            return taken
        time.sleep(Conf.POLL)  # an empty queue: spare the processor, as django-q2 does
        return None

    def claim(self, queue) -> list | None:
        """The first bulk of due tasks in `queue` (OrmQ rows), each locked by compare-and-set on the lock
        read (another cluster may have taken it meanwhile): those this broker took, or None when none was
        due.

        Due is `lock <= now`, where django-q2's broker has `lock < now`: a task is enqueued with its lock
        at the database's now, and a pusher woken at once (scheduling/broker.py) can look within the same
        millisecond (SQLite's clock's unit), when `<` left it for the next idle look, a second later. Now
        is the very expression the enqueue wrote (`_db_now()`): on SQLite, Django writes `Now()` as
        '…:51.149' and `Now() + 0` as '…:51.149000', compared as text, so the same instant in the two
        forms was not equal either."""
        tasks = list(queue.filter(key=self.list_key, lock__lte=_db_now())[: Conf.BULK])
        if not tasks:
            return None
        return [
            (task.pk, task.payload)
            for task in tasks
            if queue.filter(id=task.id, lock=task.lock).update(lock=self.timeout(task))
        ]


def prune_finished_tasks() -> int:
    """Delete the queue rows of executor tasks whose attempt is over; returns how many."""
    if not settings.Q_CLUSTER.get("orm"):
        return 0  # another broker keeps no rows here
    attempts: dict[int, tuple[int, str]] = {}
    for row in OrmQ.objects.only("id", "payload"):
        task = row.task
        args = task.get("args") or ()
        if task.get("func") in (EXECUTOR_TASK, GANG_TASK) and len(args) in (2, 3):  # gang: + rank
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
