"""django-q2's ORM broker, made to wait for work instead of polling for it (Q_CLUSTER["broker_class"]).

The stock ORM broker takes its times from each machine's clock (DatabaseClockBroker, its base here,
mends that) and looks for a task every `poll` seconds (0.05: twenty queries a second per node, for ever)
and closes and reopens its database connection before each look. This one is the same queue (the
same `OrmQ` rows, claimed the same way, so nodes on either broker interoperate), but its pusher keeps
its connection and looks only when something may have arrived:

- PostgreSQL: `enqueue` sends `NOTIFY gpuq_tasks` in the enqueuing transaction; the pusher LISTENs on its
  own connection and wakes when one arrives.
- SQLite (one machine): `enqueue` rings the queue's doorbell (scheduling/doorbell.py: a datagram to a
  Unix socket the pusher bound) as its transaction commits; the pusher sleeps until a ring comes. Only
  where it cannot bind its bell (another process holds the name) does it ask `PRAGMA data_version` (a
  counter that moves when another connection commits) every `poll` seconds, and read the queue when it
  moved.

Either way it also looks every GPUQ_Q_IDLE_POLL_SECONDS, which bounds how long a cluster takes to stop.
A database error closes the connection and the pusher tries again a second later.
"""

import os
import time

from django.conf import settings
from django.db import DatabaseError, connections, transaction
from django_q.conf import Conf, logger
from django_q.models import OrmQ

from scheduling import doorbell
from scheduling.pgnotify import listen_params
from scheduling.taskqueue import DatabaseClockBroker

CHANNEL = "gpuq_tasks"


class WakingORM(DatabaseClockBroker):
    """Times from the database's clock (DatabaseClockBroker), and a pusher that waits for work."""

    def __init__(self, list_key: str = None):
        super().__init__(list_key=list_key)
        self._pid = None  # the process the state below belongs to (the pusher is forked)
        self._listener = None
        self._bell = None  # SQLite: this pusher's doorbell, bound at its first wait
        self._bind_by = 0.0  # SQLite, its doorbell taken: when to try to bind it again
        self._version = None
        self._looked = 0.0  # monotonic time of the last look at the queue
        self._look_by = 0.0  # monotonic time of the next look whatever happens
        self._look_now = True  # look at the next call: tasks were found (maybe more than a bulk) or notified

    def enqueue(self, task):
        pk = super().enqueue(task)
        connection = connections[Conf.ORM]
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:  # delivered when the enqueuing transaction commits
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, self.list_key or ""])
        else:
            database, queue = connection.settings_dict["NAME"], self._queue()
            transaction.on_commit(lambda: doorbell.ring(database, queue), using=Conf.ORM)
        return pk

    def dequeue(self):
        if self._pid != os.getpid():
            self._reset()  # never use what a parent process opened
            self._pid = os.getpid()
        try:
            if self._look_now or self._changed() or time.monotonic() >= self._look_by:
                self._looked = time.monotonic()
                self._look_by = self._looked + settings.GPUQ_Q_IDLE_POLL_SECONDS
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

    def _claim(self) -> list | None:
        """DatabaseClockBroker's claim on this pusher's kept connection (no close_old_connections first)."""
        return self.claim(OrmQ.objects.using(Conf.ORM))

    def _changed(self) -> bool:
        """SQLite: whether another connection committed since the last look (PostgreSQL: never
        known here; `_wait` returns when a notification came)."""
        connection = connections[Conf.ORM]
        if connection.vendor != "sqlite" or (self._bell is not None and self._bell.bound):
            return False  # a ring says so instead
        # On the sqlite3 connection itself, not through Django's cursor: asked twenty times a second for
        # ever, Django's wrapping was most of an idle node's CPU.
        connection.ensure_connection()
        version = connection.connection.execute("PRAGMA data_version").fetchone()[0]
        changed, self._version = version != self._version, version
        return changed

    def _wait(self) -> None:
        remaining = max(0.0, self._look_by - time.monotonic())
        connection = connections[Conf.ORM]
        if connection.vendor == "sqlite":
            if self._bell is None:
                self._bell = doorbell.Bell(connection.settings_dict["NAME"], self._queue())
                self._look_now = True  # whatever was enqueued before it listened
                return
            if not self._bell.bound:
                # Taken (a pusher of this queue still stopping, say): poll, and try again at each idle look.
                if time.monotonic() >= self._bind_by:
                    self._bind_by = time.monotonic() + settings.GPUQ_Q_IDLE_POLL_SECONDS
                    if self._bell.bind():
                        self._look_now = True
                        return
                time.sleep(min(Conf.POLL, remaining))
                return
            time.sleep(min(doorbell.until_next_look(self._looked), remaining))  # then sleep until a ring
            if self._bell.wait(max(0.0, self._look_by - time.monotonic())):
                self._look_now = True
            return
        if self._listener is None:
            self._listener = _listen()
            self._look_now = True  # whatever came before we listened
            return
        for _ in self._listener.notifies(timeout=remaining, stop_after=1):
            self._look_now = True

    def _reset(self) -> None:
        for close in (
            getattr(self._listener, "close", None),
            getattr(self._bell, "close", None),
            connections[Conf.ORM].close,
        ):
            try:
                if close is not None:
                    close()
            except Exception:  # already broken: nothing to keep
                pass
        self._listener, self._bell, self._version, self._look_now = None, None, None, True


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
