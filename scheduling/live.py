"""Live events for pages: a relay in each web process reads new `Event` rows in id order and fans them
out to the websocket consumers of that process. Reading the table (not a message broker) is what lets
events cross processes on the embedded default (SQLite, no Redis) and in production alike, and it makes
resume-after-reconnect gapless: a client asks for the events after the last id it saw.

On PostgreSQL ids are taken before commit, so a lower id can appear after a higher one: the relay hands
on events only in id order, waiting up to GAP_SECONDS for a missing id (a transaction still committing)
before giving up on it (a rolled-back one).

Each consumer sends its user only what they may see (scheduling.events.for_receiver): it asks which of the
jobs in a batch of events the user may read, one query for the ids it has not asked about yet, and
forgets the answers at each re-check. Every GPUQ_WS_RECHECK_SECONDS it re-reads its session and user and
closes with 4401 when the session ended (logout, expiry, password change) or 4403 when the user was
deactivated; static/gpuq/live.js then goes to the login page instead of reconnecting.
"""

import asyncio
import logging
import time
from importlib import import_module
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.db import connections
from django.utils.crypto import constant_time_compare

from scheduling.events import for_receiver
from scheduling.models import Event
from scheduling.selectors import visible_jobs

log = logging.getLogger("gpuq.live")

GROUP = "gpuq-events"
POLL_SECONDS = 0.02
GAP_SECONDS = 2.0
BACKLOG_LIMIT = 5000
IDS_PER_QUERY = 500  # job ids in one visibility query (SQLite's old limit on parameters is 999)
READABLE_CACHE = 20_000  # answers a consumer keeps between re-checks
CLOSE_SESSION_ENDED = 4401  # logged out, session expired or password changed: log in again
CLOSE_DEACTIVATED = 4403  # the user was deactivated or deleted


def _last_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _after(cursor: int, limit: int = 500) -> list[dict]:
    return [e.as_message() for e in Event.objects.filter(id__gt=cursor).order_by("id")[:limit]]


def _between(after: int, through: int) -> list[dict]:
    return [
        e.as_message()
        for e in Event.objects.filter(id__gt=after, id__lte=through).order_by("id")[:BACKLOG_LIMIT]
    ]


def _readable(user, job_ids: set[int]) -> set[int]:
    """Which of `job_ids` the user may read, in a query per IDS_PER_QUERY ids."""
    ids, found = sorted(job_ids), set()
    for start in range(0, len(ids), IDS_PER_QUERY):
        chunk = ids[start : start + IDS_PER_QUERY]
        found.update(visible_jobs(user).filter(pk__in=chunk).values_list("pk", flat=True))
    return found


def _recheck(session_key: str | None, user_id: int):
    """The user as their session authenticates them now, or the close code that says why it no longer
    does. The same test as django.contrib.auth.get_user, but read-only: a socket never flushes or cycles
    the session that the user's browser holds."""
    data = import_module(settings.SESSION_ENGINE).SessionStore(session_key).load() if session_key else {}
    backend = data.get(BACKEND_SESSION_KEY)
    if str(data.get(SESSION_KEY)) != str(user_id) or backend not in settings.AUTHENTICATION_BACKENDS:
        return CLOSE_SESSION_ENDED
    user = load_backend(backend).get_user(user_id)  # None when deleted or inactive
    if user is None:
        return CLOSE_DEACTIVATED
    held = data.get(HASH_SESSION_KEY) or ""
    hashes = [user.get_session_auth_hash(), *user.get_session_auth_fallback_hash()]
    if not held or not any(constant_time_compare(held, h) for h in hashes):
        return CLOSE_SESSION_ENDED
    return user


class Relay:
    """One per process and event loop: `cursor` is the id through which every event has been handed on."""

    def __init__(self):
        self.cursor = 0
        self.loop = None
        self.task = None
        self.ready = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.loop is not loop or self.task is None or self.task.done():
            self.loop, self.ready = loop, asyncio.Event()
            self.task = loop.create_task(self._run())
        await self.ready.wait()

    async def _run(self) -> None:
        try:
            await self._relay()
        finally:  # stopped: close this task's database connection now, not when it is collected
            await database_sync_to_async(connections.close_all)()

    async def _relay(self) -> None:
        layer = get_channel_layer()
        while True:  # the database may be busy or away at start: consumers wait until it answers
            try:
                self.cursor = await database_sync_to_async(_last_id)()
                break
            except Exception:
                log.exception("live relay: cannot read the last event id; retrying")
                await asyncio.sleep(0.5)
        # With no event yet, the first id to come is unknown (a sequence need not start at 1).
        known = self.cursor > 0
        self.ready.set()
        gap_since = None
        while True:
            try:
                handed = []
                for event in await database_sync_to_async(_after)(self.cursor):
                    if known and event["id"] != self.cursor + 1:
                        gap_since = gap_since or time.monotonic()
                        if time.monotonic() - gap_since < GAP_SECONDS:
                            break  # a lower id may still commit: hold the rest back
                    gap_since, known = None, True
                    self.cursor = event["id"]
                    handed.append(event)
                if handed:  # one message a batch: each consumer filters the lot with one query
                    await layer.group_send(GROUP, {"type": "relay.events", "events": handed})
            except Exception:  # the database may be briefly unavailable: keep relaying after it returns
                log.exception("live relay: reading events failed; retrying")
                await asyncio.sleep(1)
            await asyncio.sleep(POLL_SECONDS)

    async def stop(self) -> None:
        """Stop relaying (tests that run consumers in their own event loop end with this)."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
        self.task = None


relay = Relay()


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events[?after=ID]`: every event after ID (or from now) that the user may see, in order, each
    once; then live ones. The first message is `{"kind": "hello", "id": N}`: N is where the live stream
    starts. A client that fell too far behind gets `{"kind": "reset"}` and should reload. Logged-in users
    only, re-checked every GPUQ_WS_RECHECK_SECONDS (close codes 4401 and 4403)."""

    rechecker = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_SESSION_ENDED)
            return
        self.user = user
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.readable: dict[int, bool] = {}  # job id -> may this user read it; emptied at each re-check
        after = parse_qs(self.scope["query_string"].decode()).get("after", [""])[0]
        await relay.start()
        # Join first, then read where the relay stands: nothing relayed from here on is missed, and
        # what the backlog already sent is dropped from the live stream by id.
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self.last = relay.cursor
        await self.accept()
        self.rechecker = asyncio.get_running_loop().create_task(self._recheck_periodically())
        if after.isdigit() and int(after) >= self.last:
            self.last = int(after)  # the client has seen more than the relay has handed on yet
        elif after.isdigit():
            backlog = await database_sync_to_async(_between)(int(after), self.last)
            if len(backlog) >= BACKLOG_LIMIT:
                await self.send_json({"kind": "reset", "id": self.last})
                return
            for event in await self._mine(backlog):
                await self.send_json(event)
        await self.send_json({"kind": "hello", "id": self.last})

    async def disconnect(self, code):
        if self.rechecker is not None:
            self.rechecker.cancel()
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def relay_events(self, message):
        events = [event for event in message["events"] if event["id"] > self.last]
        if events:
            self.last = events[-1]["id"]
            for event in await self._mine(events):
                await self.send_json(event)

    async def _mine(self, events: list[dict]) -> list[dict]:
        """`events` as this user may see them: one query for the jobs not asked about since the last
        re-check (a new job's first event, mostly), none for the rest."""
        unknown = {e["job"] for e in events if e["job"] is not None and e["job"] not in self.readable}
        if unknown:
            found = await database_sync_to_async(_readable)(self.user, unknown)
            if len(self.readable) + len(unknown) > READABLE_CACHE:
                self.readable = {}
            self.readable.update((job_id, job_id in found) for job_id in unknown)
        seen = (for_receiver(e, may_read=self.readable.get(e["job"], False)) for e in events)
        return [event for event in seen if event is not None]

    async def _recheck_periodically(self):
        while True:
            await asyncio.sleep(settings.GPUQ_WS_RECHECK_SECONDS)
            try:
                found = await database_sync_to_async(_recheck)(self.session_key, self.user.pk)
            except Exception:  # the database may be briefly away: keep the socket, ask again next time
                log.exception("live: re-checking user %s failed; retrying", self.user.pk)
                continue
            if isinstance(found, int):
                log.info("live: closing user %s's socket (%s)", self.user.pk, found)
                await self.close(code=found)
                return
            # Shares, levels and teams may have changed: ask again about each job from now on.
            self.user, self.readable = found, {}

    async def receive_json(self, content, **kwargs):
        pass  # clients only listen
