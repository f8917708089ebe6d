"""The live relay: one per web process, it reads new `Event` rows in commit order and hands them to the
websocket consumers of that process (scheduling.live).

Commit order, no gap, no loss. Readers never count by `Event.id`: on PostgreSQL an id is taken when the
row is inserted, so a transaction that inserts an event and commits seconds later publishes a lower id
after higher ones, and a reader that had moved past it would lose it (or, waiting for it, stall on every
rolled-back id). Instead each event gets `seq` as its transaction commits (migration 0012): a deferred
constraint trigger takes a transaction-level advisory lock and numbers the transaction's events from a
sequence. That lock is released only after the commit is visible to everyone, so the numbers are handed
out one committing transaction after another: when a reader can see number N, every lower number is
already visible, or belongs to a transaction that rolled back after taking it and will never be. So
`seq > cursor ORDER BY seq` is the whole read: no waiting for holes, no loss however long a transaction
ran, no stall after a rollback. The lock adds no serialisation of its own: the NOTIFY the same trigger
sends already makes PostgreSQL serialise notifying commits on its notification-queue lock. On SQLite
the write lock is held from a transaction's first write to its commit, so id order is commit order and
a plain trigger copies the id into `seq`.

Waking. On PostgreSQL the trigger's `pg_notify('gpuq_events')` is sent with the commit; the relay keeps
one connection that LISTENs and wakes on it, and reads again every GPUQ_EVENTS_SAFETY_SECONDS as a
safety net (after a reconnect it reads at once). On SQLite, whose processes share one machine, a
transaction that wrote events rings every relay's doorbell as it commits (scheduling/doorbell.py: a
Unix datagram; each relay binds one of doorbell.EVENT_BELLS names), and an event committed in this
process wakes its own relay at once (`poke`). As a safety net (a relay that found every bell taken, a
writer in another container) the relay also asks `PRAGMA data_version` (a counter, no table read) after
20 ms when something just happened, backing off to GPUQ_EVENTS_IDLE_POLL_SECONDS when nothing does.
Reads go through one thread that keeps its database connection, so an idle relay opens no connections
and costs next to nothing.

Lag. The relay measures, for the events it hands on, how long after being written each reached it (the
writing transaction's time, the wake and the read), and every GPUQ_RELAY_REPORT_SECONDS while events
flow writes the longest into its RelayReport row (one short write from the relay's thread), so
/metrics shows every process's relay lag whichever process is scraped.

Delivery. Each consumer subscribes with `offer(events)` (see live.EventsConsumer): the relay never waits
for a consumer, and a consumer that falls more than GPUQ_WS_QUEUE_EVENTS behind is told to resync instead
of losing events silently.
"""

import asyncio
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connections
from django.db.models import Max
from django.utils import timezone

from scheduling import doorbell
from scheduling.models import Event, RelayReport
from scheduling.pgnotify import listen_params

log = logging.getLogger("gpuq.live")

CHANNEL = "gpuq_events"  # the NOTIFY channel of migration 0012's trigger
BATCH = 500  # events read in one query
FIRST_POLL_SECONDS = 0.02  # SQLite: how soon to look again after a change


def latest_seq() -> int:
    """The commit position of the newest committed event: everything at or below it is visible now."""
    return Event.objects.aggregate(last=Max("seq"))["last"] or 0


def events_after(cursor: int, limit: int = BATCH) -> list[dict]:
    return [e.as_message() for e in Event.objects.filter(seq__gt=cursor).order_by("seq")[:limit]]


def pruned_through() -> int:
    """The position of retention's marker (the oldest event once anything was pruned): every event before
    it is gone. 0 when nothing was pruned."""
    first = Event.objects.filter(seq__isnull=False).order_by("seq").values_list("seq", "kind").first()
    return first[0] if first and first[1] == Event.Kind.PRUNED else 0


def events_between(after: int, through: int, limit: int) -> list[dict]:
    rows = Event.objects.filter(seq__gt=after, seq__lte=through).order_by("seq")[:limit]
    return [e.as_message() for e in rows]


REPORTS_KEPT = timedelta(hours=1)


def relay_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def report_lag(name: str, lag_seconds: float, events: int) -> None:
    """Store a relay's lag over its latest period (and forget relays silent for REPORTS_KEPT)."""
    now = timezone.now()
    RelayReport.objects.update_or_create(
        relay=name[:200], defaults={"lag_seconds": lag_seconds, "events": events, "reported_at": now}
    )
    RelayReport.objects.filter(reported_at__lt=now - REPORTS_KEPT).delete()


def _data_version() -> int:
    with connections["default"].cursor() as cursor:
        cursor.execute("PRAGMA data_version")
        return cursor.fetchone()[0]


class Relay:
    """One per process and event loop: `cursor` is the `seq` through which every event has been offered."""

    def __init__(self):
        self.cursor = 0
        self.loop = None
        self.task = None
        self.ready = None
        self.wake = None
        self.pool = None
        self.subscribers = set()
        self.vendor = None
        self.version = None  # SQLite's data_version when last asked
        self.looked = 0.0  # SQLite: when the relay last woke to look (time.monotonic())
        # The longest lag seen since the last report and how many events; the first report waits a period.
        self.lag = (0.0, 0)  # the longest lag seen since the last report, and how many events
        self.next_report = 0.0

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop or self.task is None or self.task.done():
            self.loop, self.ready, self.wake = loop, asyncio.Event(), asyncio.Event()
            self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="gpuq-relay")
            self.subscribers = set()
            self.next_report = time.monotonic() + settings.GPUQ_RELAY_REPORT_SECONDS
            self.task = loop.create_task(self._run())
        await self.ready.wait()

    async def db(self, function, *args):
        """Run `function(*args)` on the relay's database thread, whose connection stays open."""
        return await self.loop.run_in_executor(self.pool, function, *args)

    def subscribe(self, subscriber) -> int:
        """Offer `subscriber` every batch from now on; returns the cursor it starts after."""
        self.subscribers.add(subscriber)
        return self.cursor

    def unsubscribe(self, subscriber) -> None:
        self.subscribers.discard(subscriber)

    def poke(self) -> None:
        """Something committed an event in this process: look now (any thread may call this)."""
        loop, wake = self.loop, self.wake
        if loop is not None and wake is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(wake.set)
            except RuntimeError:  # the loop closed meanwhile
                pass

    async def _run(self) -> None:
        listener = bell = None
        try:
            while True:  # the database may be busy or away at start: consumers wait until it answers
                try:
                    self.vendor = connections["default"].vendor
                    if self.vendor == "sqlite":
                        self.version = await self.db(_data_version)
                    self.cursor = await self.db(latest_seq)
                    break
                except Exception:
                    log.exception("live relay: cannot read the last event; retrying")
                    await asyncio.sleep(0.5)
            if self.vendor == "postgresql":
                listener = self.loop.create_task(self._listen())
            else:
                bell = self._doorbell()
            self.ready.set()
            await self._relay()
        finally:  # stopped: close the thread's database connection now, not when it is collected
            if listener is not None:
                listener.cancel()
            if bell is not None:
                if not self.loop.is_closed():
                    self.loop.remove_reader(bell.fileno())
                bell.close()
            pool = self.pool
            try:
                await self.loop.run_in_executor(pool, connections.close_all)
            except (asyncio.CancelledError, RuntimeError):  # the loop is closing: the thread ends anyway
                pass
            pool.shutdown(wait=False)

    def _doorbell(self) -> "doorbell.Bell | None":
        """SQLite: a bell other processes' events ring, read by this loop; None for a database in memory
        (one process) or when every bell of this database is taken (this relay then only looks)."""
        name = str(connections["default"].settings_dict["NAME"])
        if not name or name.startswith((":", "file:")):
            return None
        bell = doorbell.first_free(name, doorbell.EVENTS)
        if bell is None:
            log.warning(
                "live relay: all %d event doorbells are taken; looking for changes every %s s instead",
                doorbell.EVENT_BELLS,
                settings.GPUQ_EVENTS_IDLE_POLL_SECONDS,
            )
            return None
        self.loop.add_reader(bell.fileno(), self._rung, bell)
        return bell

    def _rung(self, bell) -> None:
        if bell.drain():
            self.wake.set()

    async def _relay(self) -> None:
        wait = self._notified if self.vendor == "postgresql" else self._changed
        while True:
            await wait()
            try:
                while True:
                    events = await self.db(events_after, self.cursor)
                    if events:
                        self.cursor = events[-1]["id"]
                        for subscriber in list(self.subscribers):
                            subscriber.offer(events)
                        await self._measure(events)
                    if len(events) < BATCH:
                        break
            except Exception:  # the database may be briefly away: keep relaying after it returns
                log.exception("live relay: reading events failed; retrying")
                await self.db(connections.close_all)
                await asyncio.sleep(1)
                self.wake.set()

    async def _measure(self, events: list[dict]) -> None:
        """Note how long after being written these events were relayed; report it when the period is up
        (a failed report is only logged: the lag is a figure, never a reason to stop relaying)."""
        now = timezone.now()
        longest = max((now - datetime.fromisoformat(e["at"])).total_seconds() for e in events)
        self.lag = (max(self.lag[0], longest), self.lag[1] + len(events))
        if time.monotonic() < self.next_report:
            return
        self.next_report = time.monotonic() + settings.GPUQ_RELAY_REPORT_SECONDS
        lag, self.lag = self.lag, (0.0, 0)
        try:
            await self.db(report_lag, relay_name(), *lag)
        except Exception as error:
            log.warning("live relay: could not report its lag (%s)", error)

    async def _notified(self) -> None:
        """PostgreSQL: until a NOTIFY (or a reconnect) sets `wake`, or the safety interval passes."""
        # asyncio.timeout, not wait_for: on Python 3.11 wait_for swallows a cancel that comes as the wait
        # ends, and the relay then never stopped (a test hung in `stop`).
        try:
            async with asyncio.timeout(settings.GPUQ_EVENTS_SAFETY_SECONDS):
                await self.wake.wait()
        except TimeoutError:
            pass
        self.wake.clear()  # before reading: a notification during the read wakes the next wait

    async def _listen(self) -> None:
        import psycopg

        while True:
            try:
                params = await self.db(listen_params)
                async with await psycopg.AsyncConnection.connect(**params, autocommit=True) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    self.wake.set()  # whatever committed while no one listened
                    async for _ in conn.notifies():
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("live relay: listening for events failed; reconnecting")
                await asyncio.sleep(1)

    async def _changed(self) -> None:
        """SQLite: until this process pokes, a ring comes, or the database changed since the version last
        seen (read before the events were, so a commit after that read changes it again), backing off
        while idle. Never two looks within doorbell.RING_SPACING_SECONDS (`until_next_look`)."""
        await asyncio.sleep(doorbell.until_next_look(self.looked))
        interval = FIRST_POLL_SECONDS
        while True:
            try:
                async with asyncio.timeout(interval):  # not wait_for: see _notified
                    await self.wake.wait()
                break
            except TimeoutError:
                pass
            try:
                version = await self.db(_data_version)
            except Exception:
                log.exception("live relay: asking SQLite for changes failed; retrying")
                await self.db(connections.close_all)
                break
            if version != self.version:
                self.version = version
                break
            interval = min(interval * 2, settings.GPUQ_EVENTS_IDLE_POLL_SECONDS)
        self.wake.clear()
        self.looked = time.monotonic()

    async def stop(self) -> None:
        """Stop relaying (tests that run consumers in their own event loop end with this)."""
        task = self.task
        while task is not None and not task.done():  # again, should a cancel be swallowed on its way
            task.cancel()
            await asyncio.wait([task], timeout=1)
        if task is not None and not task.cancelled() and task.exception() is not None:
            log.warning("live relay: it ended with %r", task.exception())
        self.task = None


relay = Relay()
