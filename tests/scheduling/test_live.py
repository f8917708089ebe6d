"""The live stream per user (scheduling.live), through the whole websocket stack (origin check, session
cookie, consumer, relay) with WebsocketCommunicator: each user receives whole events only for the jobs
they may read; others' jobs come as the queue shows them; sockets close when their session or user ends."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import Level, Team
from queueproject.asgi import application
from scheduling.events import PUBLIC_JOB_FIELDS, emit_node, emit_progress
from scheduling.live import relay
from scheduling.services import job_share
from scheduling.states import Status
from scheduling.transitions import transition
from tests.conftest import make_user
from tests.factories import make_job

# The consumer reads the database from other threads: the test's writes must be committed.
pytestmark = pytest.mark.django_db(transaction=True)

HOST = "127.0.0.1:8000"
db = database_sync_to_async


@pytest.fixture(autouse=True)
def _no_ticks(settings):
    settings.GPUQ_EVENT_TICKS = False  # only the events the test makes


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def socket(client: Client, after: int | None = None) -> WebsocketCommunicator:
    headers = [
        (b"host", HOST.encode()),
        (b"origin", f"http://{HOST}".encode()),
        (b"cookie", f"sessionid={client.cookies['sessionid'].value}".encode()),
    ]
    return WebsocketCommunicator(
        application, "/ws/events" + (f"?after={after}" if after is not None else ""), headers
    )


def run(scenario) -> None:
    """Run an async scenario in its own event loop, then stop the relay it started there."""

    async def main():
        try:
            await scenario()
        finally:
            await relay.stop()

    asyncio.run(main())


async def opened(communicator: WebsocketCommunicator) -> list[dict]:
    """Connect and read up to the hello: the backlog, if the socket asked for one."""
    connected, code = await communicator.connect(timeout=10)
    assert connected, code
    backlog = []
    while (event := await communicator.receive_json_from(timeout=10))["kind"] != "hello":
        backlog.append(event)
    return backlog


async def until_node(communicator: WebsocketCommunicator) -> list[dict]:
    """Events up to and including the next node event: the node event is the test's end marker."""
    got = [await communicator.receive_json_from(timeout=10)]
    while got[-1]["kind"] != "node":
        got.append(await communicator.receive_json_from(timeout=10))
    return got


async def closed_with(communicator: WebsocketCommunicator) -> int:
    """Wait for the server to close the socket; its close code."""
    while (message := await communicator.receive_output(timeout=10))["type"] != "websocket.close":
        pass
    return message["code"]


def test_others_progress_is_not_sent_and_their_job_events_carry_only_the_queue_fields(alice, bob):
    job = make_job(alice, status=Status.RUNNING, name="train", progress={"fraction": 0.1, "loss": 2.5})
    alice_client, bob_client = logged_in(alice), logged_in(bob)
    got = {}

    async def scenario():
        mine, theirs = socket(alice_client), socket(bob_client)
        await opened(mine), await opened(theirs)
        await db(emit_progress)(job.pk, {"fraction": 0.5, "loss": 1.25})
        await db(transition)(job, Status.PAUSED, reason="paused at step 500")
        await db(emit_node)("n1", drained=True)
        got["alice"], got["bob"] = await until_node(mine), await until_node(theirs)
        await mine.disconnect(), await theirs.disconnect()

    run(scenario)
    assert [e["kind"] for e in got["alice"]] == ["progress", "job", "node"]
    assert got["alice"][0]["data"]["progress"] == {"fraction": 0.5, "loss": 1.25}
    assert got["alice"][1]["data"]["progress"] == {"fraction": 0.1, "loss": 2.5}
    assert got["alice"][1]["data"]["reason"] == "paused at step 500"
    assert [e["kind"] for e in got["bob"]] == ["job", "node"]
    seen = got["bob"][0]
    assert set(seen["data"]) <= PUBLIC_JOB_FIELDS and "progress" not in seen["data"]
    assert [seen["data"][k] for k in ("owner", "name", "status", "from")] == [
        "alice",
        "train",
        "paused",
        "running",
    ]


def test_the_backlog_from_the_start_is_filtered_the_same_way(alice, bob):
    job = make_job(alice, status=Status.DISPATCHED, progress={"fraction": 0.2})
    transition(job, Status.RUNNING, reason="started on n1")
    emit_progress(job.pk, {"fraction": 0.3, "loss": 0.9})
    transition(job, Status.COMPLETED, reason="exit 0")
    alice_client, bob_client = logged_in(alice), logged_in(bob)
    got = {}

    async def scenario():
        mine, theirs = socket(alice_client, after=0), socket(bob_client, after=0)
        got["alice"], got["bob"] = await opened(mine), await opened(theirs)
        await mine.disconnect(), await theirs.disconnect()

    run(scenario)
    assert [e["kind"] for e in got["alice"]] == ["job", "progress", "job"]
    assert got["alice"][1]["data"]["progress"] == {"fraction": 0.3, "loss": 0.9}
    assert [(e["kind"], e["data"]["status"]) for e in got["bob"]] == [
        ("job", "running"),
        ("job", "completed"),
    ]
    assert not any("progress" in e["data"] or "reason" in e["data"] for e in got["bob"])


def test_a_lead_sees_the_whole_of_his_teams_jobs_and_an_admin_all(alice, bob, team, root):
    lead = make_user("leo", level=Level.LEAD, team=team)
    other_lead = make_user("olga", level=Level.LEAD, team=Team.objects.create(name="audio"))
    job = make_job(alice, status=Status.RUNNING, team=team)
    clients = [logged_in(user) for user in (lead, other_lead, root)]
    got = []

    async def scenario():
        sockets = [socket(client) for client in clients]
        for each in sockets:
            await opened(each)
        await db(emit_progress)(job.pk, {"fraction": 0.75})
        await db(emit_node)("n1", drained=True)
        for each in sockets:
            got.append([e["kind"] for e in await until_node(each)])
            await each.disconnect()

    run(scenario)
    assert got == [["progress", "node"], ["node"], ["progress", "node"]]


def test_a_job_shared_to_view_is_seen_whole(alice, bob):
    job = make_job(alice, status=Status.RUNNING)
    job_share(job=job, user=alice, with_user=bob, permission="view")
    client = logged_in(bob)
    got = []

    async def scenario():
        theirs = socket(client)
        await opened(theirs)
        await db(emit_progress)(job.pk, {"fraction": 0.4})
        await db(emit_node)("n1", drained=True)
        got.extend(await until_node(theirs))
        await theirs.disconnect()

    run(scenario)
    assert [(e["kind"], e["job"], e["data"].get("progress")) for e in got] == [
        ("progress", job.pk, {"fraction": 0.4}),
        ("node", None, None),
    ]


def test_a_share_made_while_connected_counts_from_the_next_recheck(alice, bob, settings):
    settings.GPUQ_WS_RECHECK_SECONDS = 0.2
    job = make_job(alice, status=Status.RUNNING)
    client = logged_in(bob)
    rounds = []

    async def scenario():
        theirs = socket(client)
        await opened(theirs)
        await db(emit_progress)(job.pk, {"fraction": 0.1})
        await db(emit_node)("n1", drained=True)
        rounds.append([e["kind"] for e in await until_node(theirs)])
        await db(job_share)(job=job, user=alice, with_user=bob, permission="view")
        # Until a re-check has run, the consumer's earlier answer stands; then the progress comes.
        for _ in range(200):
            await db(emit_progress)(job.pk, {"fraction": 0.2})
            await db(emit_node)("n1", drained=True)
            rounds.append([e["kind"] for e in await until_node(theirs)])
            if rounds[-1] == ["progress", "node"]:
                break
        await theirs.disconnect()

    run(scenario)
    assert rounds[0] == ["node"] and rounds[-1] == ["progress", "node"]


def test_a_deactivated_users_socket_closes_and_an_active_ones_stays(alice, bob, settings):
    settings.GPUQ_WS_RECHECK_SECONDS = 0.2
    alice_client, bob_client = logged_in(alice), logged_in(bob)
    got = {}

    async def scenario():
        mine, theirs = socket(alice_client), socket(bob_client)
        await opened(mine), await opened(theirs)
        await db(get_user_model().objects.filter(pk=bob.pk).update)(is_active=False)
        got["code"] = await closed_with(theirs)
        await db(emit_node)("n1", drained=True)
        got["alice"] = await until_node(mine)
        await mine.disconnect()

    run(scenario)
    assert got["code"] == 4403
    assert [e["kind"] for e in got["alice"]] == ["node"]


def test_logging_out_closes_the_socket(bob, settings):
    settings.GPUQ_WS_RECHECK_SECONDS = 0.2
    client = logged_in(bob)
    got = {}

    async def scenario():
        theirs = socket(client)
        await opened(theirs)
        await db(client.logout)()  # deletes the session, as the logout page does
        got["code"] = await closed_with(theirs)

    run(scenario)
    assert got["code"] == 4401


def test_changing_the_password_closes_the_sockets_of_older_sessions(bob, settings):
    settings.GPUQ_WS_RECHECK_SECONDS = 0.2
    client = logged_in(bob)
    got = {}

    def change_password():
        bob.set_password("a new one")
        bob.save()

    async def scenario():
        theirs = socket(client)
        await opened(theirs)
        await db(change_password)()
        got["code"] = await closed_with(theirs)

    run(scenario)
    assert got["code"] == 4401


def test_visibility_is_asked_once_per_batch_for_new_jobs_only(alice, bob, monkeypatch):
    """A tick writes many events in one transaction: the relay hands them on as one batch and each
    socket asks once about the jobs it has not asked about yet, then not again for their later events."""
    from django.db import transaction

    from scheduling import live

    asked = []

    def counting(user, job_ids):
        asked.append(set(job_ids))
        return readable(user, job_ids)

    readable = live._readable
    monkeypatch.setattr(live, "_readable", counting)
    jobs = [make_job(alice, status=Status.RUNNING) for _ in range(3)]
    mine = make_job(bob, status=Status.RUNNING)
    client = logged_in(bob)
    got = []

    def burst(fraction: float):
        with transaction.atomic():
            for step in range(10):
                for job in [*jobs, mine]:
                    emit_progress(job.pk, {"fraction": fraction, "step": step})
            emit_node("n1", drained=True)

    async def scenario():
        theirs = socket(client)
        await opened(theirs)
        await db(burst)(0.5)
        got.append(await until_node(theirs))
        await db(burst)(0.6)
        got.append(await until_node(theirs))
        await theirs.disconnect()

    run(scenario)
    assert asked == [{job.pk for job in jobs} | {mine.pk}]
    for batch in got:
        assert [e["job"] for e in batch] == [mine.pk] * 10 + [None]


def test_a_client_resuming_from_a_pruned_event_id_gets_the_reset(alice, settings):
    from datetime import timedelta

    from django.utils import timezone

    from scheduling.housekeeping import events_prune
    from scheduling.models import Event

    settings.GPUQ_EVENT_WINDOW_HOURS = 1
    old = timezone.now() - timedelta(hours=2)
    seen, missed = (Event.objects.create(kind=Event.Kind.NODE, at=old, data={"n": i}) for i in (1, 2))
    emit_node("n3", status="online")  # recent: kept
    # `missed` is gone (its row is retention's marker now): a client that saw only `seen` lost it.
    seen.refresh_from_db()  # their commit positions
    missed.refresh_from_db()
    assert events_prune(now=timezone.now()) == 2
    client = logged_in(alice)
    got = {}

    async def scenario():
        late = socket(client, after=seen.seq)
        connected, _ = await late.connect(timeout=10)
        assert connected
        got["late"] = await late.receive_json_from(timeout=10)
        await late.disconnect()
        current = socket(client, after=missed.seq)  # saw everything pruned: resumes with no reset
        got["current"] = await opened(current)
        await current.disconnect()

    run(scenario)
    assert got["late"]["kind"] == "reset" and got["late"]["reason"] == "pruned"
    assert [e["data"]["name"] for e in got["current"]] == ["n3"]
