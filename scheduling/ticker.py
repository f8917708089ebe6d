"""The ticker: ticks run one at a time per database, at once when asked, again if asked meanwhile, else on
the node's period. A change never plans in the request or worker that made it: it asks and returns.

How a change asks (`request_tick`, inside its transaction): one UPDATE adds one to `TickState.asked`,
committed with the change on SQLite (the transaction holds the write lock already), or on PostgreSQL
in a short autocommit update after the change commits (no row lock held through the change); then this
process's ticker thread is woken. The thread (started on
first use, one per process, again after a fork) calls `run`, which ticks while the ask counter moves.

A tick that follows a long tick (asks came while the first ran) waits first as long as the first took
(GPUQ_TICK_SPACING), so that ticks of a long queue never take all of their process's time.

One ticker at a time: on PostgreSQL a session advisory lock taken with *try*; on SQLite a file lock
beside the database (one machine) and a lock within the process. A ticker that finds the lock taken
gives up, and loses nothing: it asked (committed) before it tried, so the holder, which reads the ask
counter again after letting go of the lock, sees its ask and ticks again (or whoever won the lock then
does). No tick holds a write transaction while it plans (scheduling.tick), so on SQLite no writer waits
longer than one short transaction.
"""

import fcntl
import logging
import os
import threading
import time
from contextlib import contextmanager

from django.conf import settings
from django.db import DatabaseError, close_old_connections, connection, transaction
from django.db.models import F
from django.utils import timezone

from scheduling.durations import added as durations_added
from scheduling.models import TickState

log = logging.getLogger("gpuq.ticker")

_ADVISORY_LOCK_KEY = 0x67707571  # "gpuq"
_local = threading.local()
_process_lock = threading.Lock()  # SQLite: the tickers of this process (an in-memory database has no file)
_cond = threading.Condition()  # guards _state
_state: dict = {"thread": None, "wanted": False, "busy": False}  # this process's ticker thread


def ticks_enabled() -> bool:
    return getattr(settings, "GPUQ_EVENT_TICKS", True)


# --- asking --------------------------------------------------------------------------------------------


def request_tick() -> None:
    """Ask for a tick, seen by the ticker once the current transaction commits (several asks in one
    commit are one).

    Asks made while this thread is applying a tick's plan are dropped: that tick already sees the state
    it is changing, and a changed queue is ticked again on the period.
    """
    if not ticks_enabled() or getattr(_local, "ticking", False):
        return
    conn = transaction.get_connection()
    # A rolled-back transaction (or savepoint) drops its callbacks, so a pending ask is one still here.
    if any(entry[1] in (_ask, _wake_after_ask) for entry in conn.run_on_commit):
        return
    if conn.vendor == "sqlite" and conn.in_atomic_block:
        # SQLite: this transaction holds the database's one write lock already, so the ask is written
        # in it and commits with the change, instead of queueing for the lock again after the commit.
        if not _add_ask():
            return
        transaction.on_commit(_wake_after_ask)
        return
    transaction.on_commit(_ask)


def _add_ask() -> bool:
    try:
        if not TickState.objects.filter(pk=1).update(asked=F("asked") + 1):
            TickState.objects.get_or_create(pk=1, defaults={"asked": 1})
    except DatabaseError:  # the caller's change is committed: the node's periodic tick will see it
        log.exception("could not ask for a tick; the periodic tick will run it")
        return False
    return True


def _ask() -> None:
    """After a commit (PostgreSQL, or SQLite outside a transaction): one short autocommit update. On
    PostgreSQL it does not wait for its commit to reach the disk (`synchronous_commit` off for that one
    statement): an ask lost in a crash costs nothing (while a job waits, the node's periodic tick sees it),
    and waiting for the flush kept the asks of simultaneous changes queued on the counter's row."""
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        try:
            with connection.cursor() as cursor:
                # One statement, so one transaction: the setting (local to it) applies to this update only.
                cursor.execute(
                    "UPDATE scheduling_tickstate SET asked = asked + 1"
                    " FROM (SELECT set_config('synchronous_commit', 'off', true)) AS unflushed WHERE id = 1"
                )
                asked = cursor.rowcount == 1
        except DatabaseError:
            log.exception("could not ask for a tick; the periodic tick will run it")
            return
        if asked or _add_ask():
            wake()
        return
    if _add_ask():
        wake()


def _wake_after_ask() -> None:
    wake()


def wake() -> None:
    """Wake this process's ticker thread (starting it on first use)."""
    with _cond:
        if _state["thread"] is None:
            _state["thread"] = threading.Thread(target=_serve, name="gpuq-ticker", daemon=True)
            _state["thread"].start()
        _state["wanted"] = True
        _cond.notify_all()


def _serve() -> None:
    while True:
        with _cond:
            _cond.wait_for(lambda: _state["wanted"])
            _state["wanted"], _state["busy"] = False, True
        try:
            run()
        except Exception:  # the next ask or the periodic tick retries; the thread must live on
            log.exception("tick failed")
        finally:
            close_old_connections()
            with _cond:
                _state["busy"] = False
                _cond.notify_all()


def settle(timeout: float = 30.0) -> bool:
    """Wait until this process's ticker thread has no tick to run (tests, and a command before it exits).
    Returns False if it still had one after `timeout` seconds."""
    with _cond:
        return _cond.wait_for(lambda: not _state["wanted"] and not _state["busy"], timeout)


def _forked() -> None:
    """A forked child (a django-q2 worker) has none of its parent's threads: it starts its own."""
    global _cond, _process_lock
    _cond, _process_lock = threading.Condition(), threading.Lock()
    _state.update(thread=None, wanted=False, busy=False)


os.register_at_fork(after_in_child=_forked)


# --- ticking -------------------------------------------------------------------------------------------


class ticking:
    """Context manager marking this thread as applying a tick (its own changes ask for none)."""

    def __enter__(self):
        _local.ticking = True

    def __exit__(self, *exc):
        _local.ticking = False


def _counts() -> tuple[int, int]:
    row = TickState.objects.filter(pk=1).values_list("asked", "done").first()
    return row or (0, 0)


def run(*, force: bool = False, wait: bool = False):
    """Tick while ticks are wanted, as the one ticker of this database. Returns the last tick's plan, or
    None when no tick was wanted (every ask already covered by a tick) or, without `wait`, another
    ticker held the lock (it will cover our asks). `force` ticks at least once (the period, an admin)."""
    from scheduling.tick import tick

    plan = None
    while True:
        with _lock(wait=wait) as held:
            if not held:
                return plan
            # Read under the lock: the tick covers every ask committed before its snapshot.
            asked, done = _counts()
            if not force and asked <= done:
                return plan
            started, timings = time.monotonic(), {}
            plan = tick(timings=timings)
            spent = time.monotonic() - started
            _record(asked, {"tick": spent, **timings})
        # Read after letting go of the lock: a ticker that found it taken asked before it tried, so its
        # ask is seen here (or by whoever holds the lock next).
        if _counts()[0] <= asked:
            return plan
        force = False
        # Asked again while it ticked (a flood of submissions): the next tick waits as long as this one
        # took (GPUQ_TICK_SPACING times), so that a long queue's ticks take at most about half of their
        # process's time instead of all of it, and the requests beside them keep theirs. A lone ask is
        # never delayed, nor the tick after a short one (a small queue's: waiting would only add latency).
        if spent >= settings.GPUQ_TICK_SPACING_ABOVE_SECONDS:
            _pause(min(spent * settings.GPUQ_TICK_SPACING, settings.GPUQ_TICK_SECONDS))


def _pause(seconds: float) -> None:
    if seconds > 0:
        time.sleep(seconds)


# The monotonic time of this process's last periodic whole tick (None: none yet).
_periodic: dict = {"planned": None}


def forget_periodic() -> None:
    """Tests: the next periodic tick is this process's first."""
    _periodic["planned"] = None


def run_periodic():
    """The node's safety tick, every GPUQ_TICK_SECONDS: what was asked, at once; a whole tick when a
    scheduled job's start time has come or a job is being handed to an executor (a dispatch that never
    ran); and, while any job waits, a whole tick at most every GPUQ_PLAN_SECONDS, for what time alone
    changes (ageing, off-peak windows, quota days, expiry), as Slurm's main and backfill schedulers run
    every 60 and 30 s. Every change asks for its own tick, so a queue of 10,000 waiting jobs with nothing
    happening is planned twice a minute instead of twelve times; an idle gpuq (nothing waiting) costs
    a few queries a period, not a tick."""
    from scheduling.models import Job
    from scheduling.states import WAITING, Status

    jobs = Job.objects
    now = time.monotonic()
    last = _periodic["planned"]
    due = last is None or now - last >= settings.GPUQ_PLAN_SECONDS
    force = (
        jobs.filter(status=Status.DISPATCHED).exists()
        or jobs.filter(status=Status.SCHEDULED, start_after__lte=timezone.now()).exists()
        or (due and jobs.filter(status__in=WAITING).exists())
    )
    if force:
        _periodic["planned"] = now
    return run(force=force)


def _record(asked: int, spent: dict[str, float]) -> None:
    """Mark the asks up to `asked` done and count the tick's durations (under the ticker lock: no other
    writer of `durations`), in the one update a tick already made when it advanced `done`."""
    current = TickState.objects.filter(pk=1).values_list("durations", flat=True).first() or {}
    durations = durations_added(current, spent)
    if TickState.objects.filter(pk=1, done__lt=asked).update(
        done=asked, ticked_at=timezone.now(), durations=durations
    ):
        return
    if not TickState.objects.filter(pk=1).update(durations=durations):
        TickState.objects.get_or_create(pk=1, defaults={"durations": durations})


@contextmanager
def _lock(*, wait: bool):
    """Hold the ticker lock of this database for the block; yields False when taken elsewhere. The
    PostgreSQL lock is the session's, so it outlives the tick's short transactions."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if wait:
                cursor.execute("SELECT pg_advisory_lock(%s)", [_ADVISORY_LOCK_KEY])
                held = True
            else:
                cursor.execute("SELECT pg_try_advisory_lock(%s)", [_ADVISORY_LOCK_KEY])
                held = bool(cursor.fetchone()[0])
        if not held:
            yield False
            return
        try:
            with _kept_open():
                yield True
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [_ADVISORY_LOCK_KEY])
                if not cursor.fetchone()[0]:
                    log.error("the ticker lock was lost during a tick: its database connection was closed")
        return
    if not _process_lock.acquire(blocking=wait):
        yield False
        return
    try:
        with _file_lock(wait=wait) as held:
            yield held
    finally:
        _process_lock.release()


@contextmanager
def _kept_open():
    """Keep the connection that holds the ticker lock from being closed as obsolete during the block.
    django-q2's ORM broker runs close_old_connections() at each enqueue (a dispatch's task, mid-tick),
    which closes a connection past CONN_MAX_AGE (at once in a process with gpuq_web's pool, which takes
    it back): the lock went with it, so another ticker could tick at once, and the unlock ran on a new
    session ("you don't own a lock"; a pooled session kept the lock for ever). After the block the
    connection ages as before. A connection that broke still goes (its session, and the lock, are gone)."""
    close_at, connection.close_at = connection.close_at, None
    try:
        yield
    finally:
        connection.close_at = close_at


@contextmanager
def _file_lock(*, wait: bool):
    name = str(connection.settings_dict["NAME"])
    if connection.is_in_memory_db() or name.startswith("file:"):
        yield True  # one process only: the process lock is enough
        return
    fd = os.open(f"{name}.ticker-lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)  # releases the lock
