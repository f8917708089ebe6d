"""gpuq's SQLite backend (queueproject/sqlite3/base.py) waits for the write lock itself, instead of in
SQLite's busy handler, whose sleeps grow to 100 ms, and refuses a database file replaced while it was being
opened. Runs on any test database: it opens SQLite files of its own."""

import sqlite3
import threading

import pytest
from django.db import OperationalError, connection

from queueproject.sqlite3.base import DatabaseWrapper
from tests.conftest import wait_for


def sqlite_wrapper(path, timeout: float) -> DatabaseWrapper:
    """gpuq's SQLite backend on the file `path`, set as settings.py sets the default database."""
    options = {
        "timeout": timeout,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL;",
    }
    return DatabaseWrapper(
        {**connection.settings_dict, "NAME": str(path), "OPTIONS": options, "TEST": {}}, alias="lock-probe"
    )


@pytest.fixture
def database(db, tmp_path):
    """A SQLite file with one table, and a second connection (another process's) holding its write lock."""
    path = tmp_path / "lock.sqlite3"
    with sqlite3.connect(path) as setup:
        setup.execute("PRAGMA journal_mode=WAL")
        setup.execute("CREATE TABLE t (x INTEGER)")
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield path, holder
    holder.close()


def begin_in_thread(path, timeout: float, statements: list[str], outcome: dict) -> threading.Thread:
    """Start a transaction on a new connection in a thread, as `transaction.atomic()` does, and write a
    row; `statements` gets each SQL statement SQLite runs, `outcome` what happened."""

    def run():
        db = sqlite_wrapper(path, timeout)
        try:
            db.ensure_connection()
            db.connection.set_trace_callback(statements.append)
            db._start_transaction_under_autocommit()
            db.cursor().execute("INSERT INTO t VALUES (1)")
            db.connection.commit()
            outcome["result"] = "committed"
        except OperationalError as error:
            outcome["result"] = f"failed: {error}"
        finally:
            if db.connection is not None:
                outcome["busy_timeout"] = db.connection.execute("PRAGMA busy_timeout").fetchone()[0]
            db.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def begins(statements: list[str]) -> int:
    return sum(1 for s in list(statements) if s.startswith("BEGIN IMMEDIATE"))


def test_a_transaction_retries_begin_while_another_holds_the_lock_and_starts_once_it_is_free(database):
    path, holder = database
    statements, outcome = [], {}
    thread = begin_in_thread(path, 20.0, statements, outcome)
    # SQLite's own busy handler would run BEGIN once and wait inside it: gpuq's retries it.
    wait_for(lambda: begins(statements) >= 3, message="BEGIN tried again while the lock is held")
    assert "result" not in outcome  # still waiting
    holder.execute("COMMIT")
    thread.join(60)
    assert outcome == {"result": "committed", "busy_timeout": 20_000}  # other statements keep SQLite's wait
    assert statements[0] == "PRAGMA busy_timeout = 0" and "PRAGMA busy_timeout = 20000" in statements
    assert sqlite3.connect(path).execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_a_transaction_that_never_gets_the_lock_fails_once_the_timeout_has_passed(database):
    path, holder = database
    statements, outcome = [], {}
    begin_in_thread(path, 0.3, statements, outcome).join(60)
    assert outcome == {"result": "failed: database is locked", "busy_timeout": 300}
    assert begins(statements) >= 2
    holder.execute("ROLLBACK")


def test_a_database_file_replaced_while_it_is_opened_is_not_used(db, tmp_path, monkeypatch):
    """A restore (a new file renamed over the database) just as a connection opens: the connection may hold
    the old file while the name is the new one's, so its health check would never notice. It is refused
    (the next try opens the new file)."""
    from django.db.backends.sqlite3 import base as django_sqlite

    path, restored = tmp_path / "db.sqlite3", tmp_path / "restored.sqlite3"
    for name in (path, restored):
        with sqlite3.connect(name) as setup:
            setup.execute("CREATE TABLE t (x INTEGER)")
    opened = django_sqlite.DatabaseWrapper.get_new_connection

    def open_then_restore(self, conn_params):
        connection = opened(self, conn_params)
        if restored.exists():
            restored.rename(path)
        return connection

    monkeypatch.setattr(django_sqlite.DatabaseWrapper, "get_new_connection", open_then_restore)
    wrapper = sqlite_wrapper(path, 5.0)
    with pytest.raises(OperationalError, match="was replaced while it was opened"):
        wrapper.ensure_connection()
    wrapper.ensure_connection()  # the next try opens the file that now has the name
    assert wrapper.is_usable()
    wrapper.close()
