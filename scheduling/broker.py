"""django-q2's ORM broker, made to wait for work instead of polling for it (Q_CLUSTER["broker_class"]).

The stock ORM broker takes its times from each machine's clock (DatabaseClockBroker, its base here,
mends that) and looks for a task every `poll` seconds (0.05: twenty queries a second per node, for ever)
and closes and reopens its database connection before each look. This one is the same queue (the
same `OrmQ` rows, claimed the same way, so nodes on either broker interoperate), but its pusher keeps
its connection and looks only when something may have arrived:

- PostgreSQL: `enqueue` sends `NOTIFY gpuq_tasks` in the enqueuing transaction; the pusher LISTENs on its
  own connection and wakes when one arrives.
- SQLite (one machine): every `poll` seconds the pusher asks `PRAGMA data_version`, a counter that moves
  when another connection commits, and reads the queue only when it moved.

Either way it also looks every GPUQ_Q_IDLE_POLL_SECONDS, which bounds how long a cluster takes to stop.
A database error closes the connection and the pusher tries again a second later.
"""

import os
import time

from django.conf import settings
from django.db import DatabaseError, connections
from django.db.models.functions import Now
from django_q.conf import Conf, logger
from django_q.models import OrmQ

from scheduling.pgnotify import listen_params
from scheduling.taskqueue import DatabaseClockBroker

CHANNEL = "gpuq_tasks"


class WakingORM(DatabaseClockBroker):
    """Times from the database's clock (DatabaseClockBroker), and a pusher that waits for work."""

    def __init__(self, list_key: str = None):
        super().__init__(list_key=list_key)
        self._pid = None  # the process the state below belongs to (the pusher is forked)
        self._listener = None
        self._version = None
        self._look_by = 0.0  # monotonic time of the next look whatever happens
        self._look_now = True  # look at the next call: tasks were found (maybe more than a bulk) or notified

    def enqueue(self, task):
        pk = super().enqueue(task)
        connection = connections[Conf.ORM]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # delivered when the enqueuing transaction commits
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self.list_key or ""])
        return pk

    def dequeue(self):
        if self._pid != os.getpid():
            self._reset()  # never use what a parent process opened
            self._pid = os.getpid()
        try:
            if self._look_now or self._changed() or time.monotonic() >= self._look_by:
                self._look_by = time.monotonic() + settings.GPUQ_Q_IDLE_POLL_SECONDS
                tasks = self._claim()
                self._look_now = bool(tasks)
                if tasks:
                    return tasks
            self._wait()
        except (DatabaseError, OSError, _psycopg_error()):  # the listener's errors are psycopg's own
            logger.exception("task queue: the database failed; reconnecting")
            self._reset()
            time.sleep(1)
            self._look_now = True
        return None

    def _claim(self) -> list:
        """The stock broker's claim on the database's clock: the first bulk of due tasks, each locked by
        compare-and-set."""
        queue = OrmQ.objects.using(Conf.ORM)
        claimed = []
        for task in queue.filter(key=self.list_key, lock__lt=Now())[: Conf.BULK]:
            if queue.filter(id=task.id, lock=task.lock).update(lock=self.timeout(task)):
                claimed.append((task.pk, task.payload))
        return claimed

    def _changed(self) -> bool:
        """SQLite: whether another connection committed since the last look (PostgreSQL: never
        known here; `_wait` returns when a notification came)."""
        connection = connections[Conf.ORM]
        if connection.vendor != "sqlite":
            return False
        # On the sqlite3 connection itself, not through Django's cursor: asked twenty times a second for
        # ever, Django's wrapping was most of an idle node's CPU.
        connection.ensure_connection()
        version = connection.connection.execute("PRAGMA data_version").fetchone()[0]
        changed, self._version = version != self._version, version
        return changed

    def _wait(self) -> None:
        remaining = max(0.0, self._look_by - time.monotonic())
        if connections[Conf.ORM].vendor != "postgresql":
            time.sleep(min(Conf.POLL, remaining))
            return
        if self._listener is None:
            self._listener = _listen()
            self._look_now = True  # whatever came before we listened
            return
        for _ in self._listener.notifies(timeout=remaining, stop_after=1):
            self._look_now = True

    def _reset(self) -> None:
        for close in (getattr(self._listener, "close", None), connections[Conf.ORM].close):
            try:
                if close is not None:
                    close()
            except Exception:  # already broken: nothing to keep
                pass
        self._listener, self._version, self._look_now = None, None, True


def _psycopg_error():
    try:
        import psycopg
    except ImportError:  # SQLite only: no listener to fail
        return DatabaseError
    return psycopg.Error


def _listen():
    import psycopg

    listener = psycopg.connect(**listen_params(Conf.ORM), autocommit=True)
    listener.execute(f"LISTEN {CHANNEL}")
    return listener
