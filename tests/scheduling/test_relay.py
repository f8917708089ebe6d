"""The live relay's promises (scheduling.relay), through real websockets (WebsocketCommunicator on the
whole ASGI stack) and real transactions in other threads: events reach clients in commit order however
long their transaction took, rollbacks leave no hole to wait on, a client that falls behind is told to
resync instead of losing events, and a page's stream position is read before what it shows."""

import asyncio
import re
import threading
import time

import pytest
from channels.db import database_sync_to_async
from django.conf import settings as django_settings
from django.db import IntegrityError, connections, transaction

from scheduling.events import emit_node
from scheduling.live import EventsConsumer
from scheduling.models import Event, JobStateTransition
from scheduling.relay import latest_seq, relay
from scheduling.states import Status
from tests.conftest import wait_for
from tests.scheduling.test_live import logged_in, opened, run, socket

pytestmark = pytest.mark.django_db(transaction=True)
db = database_sync_to_async
postgresql_only = pytest.mark.skipif(
    "postgresql" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="PostgreSQL takes ids before commit; SQLite cannot",
)


async def node_events(communicator, count: int) -> list[dict]:
    return [await communicator.receive_json_from(timeout=10) for _ in range(count)]


class SlowTransaction(threading.Thread):
    """A transaction in its own thread and connection that writes a node event, then holds on until told
    to commit (or to roll back)."""

    def __init__(self, name: str, *, commit: bool = True):
        super().__init__(daemon=True)
        self.name_, self.commit = name, commit
        self.written, self.finish = threading.Event(), threading.Event()

    def run(self):
        try:
            with transaction.atomic():
                emit_node(self.name_)
                self.taken = time.monotonic()
                self.written.set()
                self.finish.wait(60)
                if not self.commit:
                    transaction.set_rollback(True)
        finally:
            connections.close_all()


@postgresql_only
def test_an_event_committed_long_after_its_id_was_taken_reaches_clients_in_commit_order(alice):
    """A's id is taken first, B's later; B commits at once, A only after B has reached the client and 5 s
    have passed (longer than any wait for a hole): the client gets B then A, and a client that resumes
    from before both gets them in the same order."""
    client = logged_in(alice)
    slow = SlowTransaction("a")
    got, resumed = [], []

    async def scenario():
        live = socket(client)
        await opened(live)
        start = relay.cursor
        slow.start()
        await asyncio.to_thread(slow.written.wait, 10)
        await db(emit_node)("b")
        got.extend(await node_events(live, 1))
        # The scenario itself is a long transaction: it stays open until 5 s after A's id was taken.
        await asyncio.to_thread(wait_for, lambda: time.monotonic() - slow.taken >= 5, 30, 0.1, "5 s")
        slow.finish.set()
        await asyncio.to_thread(slow.join, 10)
        got.extend(await node_events(live, 1))
        again = socket(client, after=start)
        resumed.extend(await opened(again))
        await live.disconnect(), await again.disconnect()

    run(scenario)
    assert [e["data"]["name"] for e in got] == ["b", "a"]
    assert got[0]["id"] < got[1]["id"]  # positions follow commit order...
    a, b = Event.objects.get(data__name="a"), Event.objects.get(data__name="b")
    assert a.pk < b.pk  # ...which is not id order
    assert resumed == got


@postgresql_only
def test_a_rollback_after_taking_a_position_leaves_no_hole_to_wait_on(alice):
    """One transaction rolls back before commit; another fails at commit, after the trigger numbered its
    event (a deferred foreign key that does not hold): the events after them arrive, in order."""
    client = logged_in(alice)
    got = []

    def fails_at_commit():
        try:
            with transaction.atomic():
                emit_node("lost")
                # A transition of a job that does not exist: its foreign key is checked after the
                # event's trigger has run, as the transaction commits.
                JobStateTransition.objects.create(job_id=-1, to_status=Status.PENDING)
        except IntegrityError:
            return
        raise AssertionError("the commit should have failed")

    async def scenario():
        live = socket(client)
        await opened(live)
        before = await db(latest_seq)()
        rolled_back = SlowTransaction("rolled back", commit=False)
        rolled_back.start()
        await asyncio.to_thread(rolled_back.written.wait, 10)
        await db(emit_node)("first")
        rolled_back.finish.set()
        await asyncio.to_thread(rolled_back.join, 10)
        await db(fails_at_commit)()
        await db(emit_node)("second")
        got.extend(await node_events(live, 2))
        got.append(before)
        await live.disconnect()

    run(scenario)
    first, second, before = got
    assert [first["data"]["name"], second["data"]["name"]] == ["first", "second"]
    assert second["id"] > first["id"] + 1 > before + 1  # the failed commit took a position and left it
    assert not Event.objects.filter(data__name__in=["lost", "rolled back"]).exists()


def test_a_client_that_falls_behind_is_told_to_resync_and_then_follows_on(alice, settings, monkeypatch):
    """While the socket is stuck on one batch, more events come than GPUQ_WS_QUEUE_EVENTS: it forgets
    them and says `reset` with the position to follow on from, then sends the next events as usual."""
    settings.GPUQ_WS_QUEUE_EVENTS = 3
    client = logged_in(alice)
    got, positions = [], {}

    async def scenario():
        live = socket(client)
        await opened(live)
        stuck, gate = asyncio.Event(), asyncio.Event()
        original = EventsConsumer._mine

        async def slow_mine(self, events):
            stuck.set()
            await gate.wait()
            return await original(self, events)

        monkeypatch.setattr(EventsConsumer, "_mine", slow_mine)
        await db(emit_node)("n1")
        await asyncio.wait_for(stuck.wait(), 10)
        for i in range(2, 7):
            await db(emit_node)(f"n{i}")
        positions["n6"] = await db(latest_seq)()
        await asyncio.to_thread(wait_for, lambda: relay.cursor >= positions["n6"], 10, 0.01, "relay")
        gate.set()
        got.extend(await node_events(live, 2))
        await db(emit_node)("n7")
        got.extend(await node_events(live, 1))
        await live.disconnect()

    run(scenario)
    assert [e["kind"] for e in got] == ["node", "reset", "node"]
    assert got[0]["data"]["name"] == "n1"
    assert got[1]["id"] == positions["n6"]
    assert got[2]["data"]["name"] == "n7"


def test_a_page_reads_its_stream_position_before_what_it_shows(alice, node, monkeypatch):
    """A change committed while the page is being built is after the position the page carries, so its
    script receives it (and refetches)."""
    from scheduling import selectors

    board = selectors.gpu_board

    def board_changing_meanwhile():
        emit_node(node.name, drained=True)
        return board()

    monkeypatch.setattr(selectors, "gpu_board", board_changing_meanwhile)
    response = logged_in(alice).get("/gpus/")
    shown = int(re.search(r'data-after="(\d+)"', response.content.decode()).group(1))
    assert shown < latest_seq()


sqlite_only = pytest.mark.skipif(
    "sqlite" not in django_settings.DATABASES["default"]["ENGINE"],
    reason="SQLite's relays are rung (scheduling/doorbell.py); PostgreSQL's LISTEN",
)


@sqlite_only
def test_an_event_another_process_commits_reaches_clients_at_once_not_at_the_relays_next_look(
    alice, monkeypatch, settings
):
    """SQLite: with the relay's looks for changes ten minutes apart, an event that another process
    commits still reaches a client at once: its commit rang the relay's doorbell (before the bells, it
    waited for the relay's next look, up to GPUQ_EVENTS_IDLE_POLL_SECONDS)."""
    import subprocess
    import sys
    from pathlib import Path

    from scheduling import relay as relay_module
    from tests.conftest import child_env

    manage = Path(__file__).resolve().parents[2] / "manage.py"

    monkeypatch.setattr(relay_module, "FIRST_POLL_SECONDS", 600.0)
    settings.GPUQ_EVENTS_IDLE_POLL_SECONDS = 600.0
    client = logged_in(alice)
    got = []

    async def scenario():
        live = socket(client)
        await opened(live)
        writer = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(manage), "shell", "-c",
             "from scheduling.events import emit_node; emit_node('from another process')"],
            env=child_env(GPUQ_LOG_LEVEL="WARNING"), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert writer.returncode == 0, writer.stderr
        got.extend(await node_events(live, 1))
        await live.disconnect()

    run(scenario)
    assert [e["data"]["name"] for e in got] == ["from another process"]


@sqlite_only
def test_each_relay_of_a_database_has_a_bell_of_its_own_and_a_commit_rings_them_all(tmp_path):
    """Several web processes follow one SQLite database: each relay binds a free bell, and the commit of
    an event rings every one of them."""
    from scheduling import doorbell

    database = str(tmp_path / "db.sqlite3")
    bells = [doorbell.first_free(database, doorbell.EVENTS) for _ in range(doorbell.EVENT_BELLS)]
    try:
        assert all(bells) and len({bell.fileno() for bell in bells}) == doorbell.EVENT_BELLS
        assert doorbell.first_free(database, doorbell.EVENTS) is None  # all taken: that relay looks
        doorbell.ring_all(database, doorbell.EVENTS)
        assert [bell.wait(60) for bell in bells] == [1] * doorbell.EVENT_BELLS
        other = doorbell.first_free(str(tmp_path / "other.sqlite3"), doorbell.EVENTS)
        assert other is not None  # another database's bells are its own
        other.close()
    finally:
        for bell in bells:
            if bell is not None:
                bell.close()


@sqlite_only
def test_a_flood_of_rings_makes_the_relay_look_at_most_a_hundred_times_a_second(alice, monkeypatch):
    """Anyone of gpuq's own Unix user may ring: however fast rings come, the relay reads the events at
    most once every doorbell.RING_SPACING_SECONDS."""
    from scheduling import doorbell
    from scheduling import relay as relay_module

    looks = []
    real = relay_module.events_after
    monkeypatch.setattr(relay_module, "events_after", lambda *a, **k: looks.append(1) or real(*a, **k))
    client = logged_in(alice)
    database = str(connections["default"].settings_dict["NAME"])

    async def scenario():
        live = socket(client)
        await opened(live)
        looks.clear()
        started = time.monotonic()

        def flood():
            for _ in range(3000):
                doorbell.ring_all(database, doorbell.EVENTS)

        await asyncio.to_thread(flood)
        elapsed = time.monotonic() - started
        await live.disconnect()
        assert looks, "the rings woke the relay"
        assert len(looks) <= elapsed / doorbell.RING_SPACING_SECONDS + 3, (len(looks), elapsed)

    run(scenario)
