"""Django's SQLite backend, with a health check that notices when the database file was replaced, and
writers that wait for the write lock without SQLite's growing sleeps.

gpuq keeps its database connections (CONN_MAX_AGE): a node's loops, its executors, the relay, the ticker and
the web process's request threads each hold one. An open SQLite connection reads and writes the file it
opened, whatever now has that name: a database moved aside (restored from a backup, or gone with its
disk) would keep taking writes no one will see again, and a web process would answer 201 for a job it
wrote into the old file. Django's SQLite backend reports every connection usable. This one is usable only
while the file at its path is still the file it opened (the same device and inode), and Django's health
check (CONN_HEALTH_CHECKS, at each request's and loop's first query) closes it otherwise: the next query
opens the path anew, or fails with the database unavailable (a 503 from the web). An in-memory database is
always usable. A connection opened while the file was being replaced is refused, since which of the two
files it has is not known. A connection never creates the database file where one was: while the file is away (its WAL
file left behind), opening fails instead of making an empty database that would take over that WAL.

It also waits for the write lock itself. Every gpuq transaction on SQLite begins IMMEDIATE (it takes the
database's one write lock at BEGIN). A writer that finds the lock taken waits in SQLite's busy handler,
which sleeps 1, 2, 5, 10, 15, 20, 25, 25, 25, 50, 50, 100 ms between tries whenever the lock came free:
with eight executors finishing at once (transactions of 2-3 ms), the last one waited 32-71 ms for 20 ms
of work. Here:

- the threads of one process (a web process's request threads) take turns on a lock of the process
  first, held from BEGIN to COMMIT or ROLLBACK: one that waits sleeps until the lock is let go, without
  holding the interpreter;
- the thread whose turn it is tries BEGIN with the busy handler off, and again after 0.1 ms, then twice
  as long each time up to 1 ms, while another process holds the write lock.

Both waits end at the connection's timeout (GPUQ_SQLITE_TIMEOUT_SECONDS), with the error SQLite would
give ("database is locked"). Other statements keep SQLite's handler and the same timeout.
"""

import os
import sqlite3
import threading
import time
from urllib.parse import quote

from django.db import OperationalError
from django.db.backends.sqlite3 import base, creation

FIRST_PAUSE_SECONDS = 0.0001
LONGEST_PAUSE_SECONDS = 0.001

_writers: dict[str, threading.Lock] = {}  # per database file: this process's writer, BEGIN to its end
_writers_lock = threading.Lock()


def _writer_lock(path: str) -> threading.Lock:
    with _writers_lock:
        return _writers.setdefault(path, threading.Lock())


def _forked() -> None:
    """A forked child has one thread: no lock another thread of its parent held may stay taken."""
    global _writers_lock
    _writers_lock = threading.Lock()
    _writers.clear()


os.register_at_fork(after_in_child=_forked)


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


def _existing_only(path: str) -> str:
    """What to open for the database file at `path`: while the file is there, a URI that opens it and
    never creates one (mode=rw: a file gone in between fails to open). No file but its WAL file: the
    database was moved or is being restored, and a new empty one would take over that WAL; refused.
    Neither: a first start, and SQLite creates it. (SQLite would read that WAL into the new file: pages of
    the missing database, and a checkpoint then empties the WAL the missing database needs.)"""
    if os.path.exists(path):
        return f"file:{quote(os.path.abspath(path))}?mode=rw"
    if os.path.exists(f"{path}-wal"):
        raise OperationalError(
            f"unable to open database file: {path} is missing and its WAL file {path}-wal is there; put the"
            " database back, or remove the WAL and -shm files too to start a new one"
        )
    return path


def _busy(error: OperationalError) -> bool:
    """Whether the write lock was taken (SQLITE_BUSY), as opposed to any other failure."""
    cause = error.__cause__
    return getattr(cause, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY


class DatabaseCreation(creation.DatabaseCreation):
    def _create_test_db(self, verbosity, autoclobber, keepdb=False):
        """The test database is made anew: its old WAL files go with the old file."""
        name = self._get_test_db_name()
        if not keepdb and not self.is_in_memory_db(name):
            for leftover in (f"{name}-wal", f"{name}-shm"):
                if os.path.exists(leftover):
                    os.remove(leftover)
        return super()._create_test_db(verbosity, autoclobber, keepdb)


class DatabaseWrapper(base.DatabaseWrapper):
    creation_class = DatabaseCreation

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._opened = None  # (device, inode) of the file the open connection opened; None: in memory
        self._turn = None  # this process's writer lock for the file, while this connection's transaction runs

    def get_new_connection(self, conn_params):
        self._lock_timeout = float(conn_params.get("timeout", 5.0))  # sqlite3.connect's default
        if self.is_in_memory_db():
            self._opened = None
            return super().get_new_connection(conn_params)
        path = str(self.settings_dict["NAME"])
        before = _identity(path)
        connection = super().get_new_connection({**conn_params, "database": _existing_only(path)})
        self._opened = _identity(path)
        if before is not None and self._opened != before:
            # Replaced while it was opened: which file this connection has is not known, so not this one.
            connection.close()
            raise OperationalError(f"unable to open database file: {path} was replaced while it was opened")
        return connection

    def _start_transaction_under_autocommit(self):
        if self.transaction_mode is None or self.is_in_memory_db():
            return super()._start_transaction_under_autocommit()
        deadline = time.monotonic() + self._lock_timeout
        turn = _writer_lock(self.settings_dict["NAME"])
        if not turn.acquire(timeout=self._lock_timeout):
            raise OperationalError("database is locked")
        self._turn = turn
        try:
            self._begin(deadline)
        except BaseException:
            self._end_turn()
            raise

    def _begin(self, deadline: float) -> None:
        raw, begin, pause = self.connection, f"BEGIN {self.transaction_mode}", FIRST_PAUSE_SECONDS
        raw.execute("PRAGMA busy_timeout = 0")
        try:
            while True:
                try:
                    self.cursor().execute(begin)
                    return
                except OperationalError as error:
                    if not _busy(error) or time.monotonic() >= deadline:
                        raise
                time.sleep(pause)
                pause = min(pause * 2, LONGEST_PAUSE_SECONDS)
        finally:
            raw.execute(f"PRAGMA busy_timeout = {round(self._lock_timeout * 1000)}")

    def _end_turn(self) -> None:
        turn, self._turn = self._turn, None
        if turn is not None:
            turn.release()

    # The transaction ends with its COMMIT or ROLLBACK, or with the connection (which rolls it back).
    def _commit(self):
        try:
            return super()._commit()
        finally:
            self._end_turn()

    def _rollback(self):
        try:
            return super()._rollback()
        finally:
            self._end_turn()

    def _close(self):
        try:
            return super()._close()
        finally:
            self._end_turn()

    def is_usable(self):
        return self._opened is None or _identity(self.settings_dict["NAME"]) == self._opened
