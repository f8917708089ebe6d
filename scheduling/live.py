"""Live events for pages: the websocket consumer that sends each user, in commit order, the events
they may see. The relay (scheduling.relay) reads the `Event` table once per web process and offers each
batch to the consumers of that process. Reading the table (not a message broker) is what lets events cross
processes on the embedded default (SQLite, no Redis) and in production alike, and it makes resume after
reconnect gapless: a client asks for the events after the last position (`id`, the event's `seq`) it saw.

Nothing is dropped silently: each consumer queues what the relay offers and sends it on its own; when it
falls more than GPUQ_WS_QUEUE_EVENTS events behind (a slow socket, a flood of events), it forgets the
queue and sends `{"kind": "reset", "id": N}`: the client refetches what it shows and follows on after N.

Each consumer sends its user only what they may see (scheduling.events.for_receiver): it asks which of the
jobs in a batch of events the user may read, one query for the ids it has not asked about yet, and
forgets the answers at each re-check. Every GPUQ_WS_RECHECK_SECONDS it re-reads its session and user and
closes with 4401 when the session ended (logout, expiry, password change) or 4403 when the user was
deactivated; static/gpuq/live.js then goes to the login page instead of reconnecting. Its database reads
go through the relay's thread, whose connection stays open.
"""

import asyncio
import logging
from collections import deque
from importlib import import_module
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
from django.utils.crypto import constant_time_compare

from queueproject.strict import whole_number
from scheduling.events import for_receiver
from scheduling.relay import events_between, pruned_through, relay
from scheduling.selectors import visible_jobs

log = logging.getLogger("gpuq.live")

__all__ = ["EventsConsumer", "relay"]

BACKLOG_LIMIT = 5000
IDS_PER_QUERY = 500  # job ids in one visibility query (SQLite's old limit on parameters is 999)
READABLE_CACHE = 20_000  # answers a consumer keeps between re-checks
CLOSE_SESSION_ENDED = 4401  # logged out, session expired or password changed: log in again
CLOSE_DEACTIVATED = 4403  # the user was deactivated or deleted


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


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events[?after=N]`: every event after position N (or from now) that the user may see, in commit
    order, each once; then live ones. The first message is `{"kind": "hello", "id": N}`: N is where the
    live stream starts. A client that fell too far behind (`"reason": "behind"`, in the backlog or live),
    or that resumes after a position whose successors retention pruned (`"reason": "pruned"`, older than
    GPUQ_EVENT_WINDOW_HOURS), gets `{"kind": "reset", "id": N, "reason": …}`: it should refetch what it
    shows and read on after N. Logged-in users only, re-checked every GPUQ_WS_RECHECK_SECONDS (close
    codes 4401 and 4403)."""

    rechecker = None
    sender = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_SESSION_ENDED)
            return
        self.user = user
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        self.readable: dict[int, bool] = {}  # job id -> may this user read it; emptied at each re-check
        self.offered: deque[list[dict]] = deque()  # batches from the relay, not sent yet
        self.queued = 0  # events in `offered`
        self.behind_to = None  # when too far behind: the position to resync to
        self.has_work = asyncio.Event()
        after = parse_qs(self.scope["query_string"].decode()).get("after", [""])[0]
        await relay.start()
        # Subscribe first, then read the backlog up to where the relay stood: nothing relayed from here
        # on is missed, and what the backlog already sent is dropped from the live stream by position.
        self.last = relay.subscribe(self)
        await self.accept()
        self.rechecker = asyncio.get_running_loop().create_task(self._recheck_periodically())
        if whole_number(after) and int(after) >= self.last:
            self.last = int(after)  # the client has seen more than the relay has handed on yet
        elif whole_number(after):
            # Retention prunes the oldest events and marks where it stopped: events after `after` are
            # gone when the marker comes after it.
            if int(after) < await relay.db(pruned_through):
                await self.send_json({"kind": "reset", "id": self.last, "reason": "pruned"})
                backlog = []
            else:
                backlog = await relay.db(events_between, int(after), self.last, BACKLOG_LIMIT)
            if len(backlog) >= BACKLOG_LIMIT:
                backlog = []
                await self.send_json({"kind": "reset", "id": self.last, "reason": "behind"})
            for event in await self._mine(backlog):
                await self.send_json(event)
        await self.send_json({"kind": "hello", "id": self.last})
        self.sender = asyncio.get_running_loop().create_task(self._send_offered())

    async def disconnect(self, code):
        relay.unsubscribe(self)
        for task in (self.rechecker, self.sender):
            if task is not None:
                task.cancel()

    def offer(self, events: list[dict]) -> None:
        """A batch from the relay (called in the event loop; never waits). Past GPUQ_WS_QUEUE_EVENTS
        queued events the queue is dropped and the client will be told to resync instead."""
        if self.behind_to is None and self.queued + len(events) <= settings.GPUQ_WS_QUEUE_EVENTS:
            self.offered.append(events)
            self.queued += len(events)
        else:
            self.offered.clear()
            self.queued = 0
            self.behind_to = events[-1]["id"]
        self.has_work.set()

    async def _send_offered(self):
        while True:
            await self.has_work.wait()
            self.has_work.clear()
            if self.behind_to is not None:
                self.last, self.behind_to = self.behind_to, None
                log.info("live: user %s's socket fell behind; told to resync at %s", self.user.pk, self.last)
                await self.send_json({"kind": "reset", "id": self.last, "reason": "behind"})
            events = [event for batch in self.offered for event in batch if event["id"] > self.last]
            self.offered.clear()
            self.queued = 0
            if events:
                self.last = events[-1]["id"]
                for event in await self._mine(events):
                    await self.send_json(event)

    async def _mine(self, events: list[dict]) -> list[dict]:
        """`events` as this user may see them: one query for the jobs not asked about since the last
        re-check (a new job's first event, mostly), none for the rest."""
        unknown = {e["job"] for e in events if e["job"] is not None and e["job"] not in self.readable}
        if unknown:
            found = await relay.db(_readable, self.user, unknown)
            if len(self.readable) + len(unknown) > READABLE_CACHE:
                self.readable = {}
            self.readable.update((job_id, job_id in found) for job_id in unknown)
        seen = (for_receiver(e, may_read=self.readable.get(e["job"], False)) for e in events)
        return [event for event in seen if event is not None]

    async def _recheck_periodically(self):
        while True:
            await asyncio.sleep(settings.GPUQ_WS_RECHECK_SECONDS)
            try:
                found = await relay.db(_recheck, self.session_key, self.user.pk)
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
