"""Live events for pages: a relay in each web process reads new `Event` rows in id order and fans them
out to the websocket consumers of that process. Reading the table (not a message broker) is what lets
events cross processes on the embedded default (SQLite, no Redis) and in production alike, and it makes
resume-after-reconnect gapless: a client asks for the events after the last id it saw.

On PostgreSQL ids are taken before commit, so a lower id can appear after a higher one: the relay hands
on events only in id order, waiting up to GAP_SECONDS for a missing id (a transaction still committing)
before giving up on it (a rolled-back one).
"""

import asyncio
import logging
import time
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.layers import get_channel_layer

from scheduling.models import Event

log = logging.getLogger("gpuq.live")

GROUP = "gpuq-events"
POLL_SECONDS = 0.02
GAP_SECONDS = 2.0
BACKLOG_LIMIT = 5000


def _last_id() -> int:
    return Event.objects.order_by("-id").values_list("id", flat=True).first() or 0


def _after(cursor: int, limit: int = 500) -> list[dict]:
    return [e.as_message() for e in Event.objects.filter(id__gt=cursor).order_by("id")[:limit]]


def _between(after: int, through: int) -> list[dict]:
    return [
        e.as_message()
        for e in Event.objects.filter(id__gt=after, id__lte=through).order_by("id")[:BACKLOG_LIMIT]
    ]


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
                for event in await database_sync_to_async(_after)(self.cursor):
                    if known and event["id"] != self.cursor + 1:
                        gap_since = gap_since or time.monotonic()
                        if time.monotonic() - gap_since < GAP_SECONDS:
                            break  # a lower id may still commit: hold the rest back
                    gap_since, known = None, True
                    self.cursor = event["id"]
                    await layer.group_send(GROUP, {"type": "relay.event", "event": event})
            except Exception:  # the database may be briefly unavailable: keep relaying after it returns
                log.exception("live relay: reading events failed; retrying")
                await asyncio.sleep(1)
            await asyncio.sleep(POLL_SECONDS)


relay = Relay()


class EventsConsumer(AsyncJsonWebsocketConsumer):
    """`/ws/events[?after=ID]`: every event after ID (or from now), in order, each once; then live ones.
    The first message is `{"kind": "hello", "id": N}`: N is where the live stream starts. A client that
    fell too far behind gets `{"kind": "reset"}` and should reload. Logged-in users only."""

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)
            return
        after = parse_qs(self.scope["query_string"].decode()).get("after", [""])[0]
        await relay.start()
        # Join first, then read where the relay stands: nothing relayed from here on is missed, and
        # what the backlog already sent is dropped from the live stream by id.
        await self.channel_layer.group_add(GROUP, self.channel_name)
        self.last = relay.cursor
        await self.accept()
        if after.isdigit() and int(after) >= self.last:
            self.last = int(after)  # the client has seen more than the relay has handed on yet
        elif after.isdigit():
            backlog = await database_sync_to_async(_between)(int(after), self.last)
            if len(backlog) >= BACKLOG_LIMIT:
                await self.send_json({"kind": "reset", "id": self.last})
                return
            for event in backlog:
                await self.send_json(event)
        await self.send_json({"kind": "hello", "id": self.last})

    async def disconnect(self, code):
        await self.channel_layer.group_discard(GROUP, self.channel_name)

    async def relay_event(self, message):
        event = message["event"]
        if event["id"] > self.last:
            self.last = event["id"]
            await self.send_json(event)

    async def receive_json(self, content, **kwargs):
        pass  # clients only listen
