"""Live events over real websockets: a real Daphne process relays the Event table to a real client.
Changes are made in this process, so every event crosses processes, as in the embedded default."""

import json

import pytest
from django.contrib.auth import get_user_model
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from gpus.services import node_set_drained
from scheduling.events import emit_progress
from scheduling.models import Event
from scheduling.services import job_cancel
from scheduling.states import Status
from scheduling.transitions import transition
from tests.e2e.conftest import login
from tests.factories import make_job

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def ws(base: str, client=None, after: int | None = None, origin: str | None = None):
    url = base.replace("http://", "ws://") + "/ws/events" + (f"?after={after}" if after is not None else "")
    headers = {"Origin": origin or base}
    if client is not None:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return connect(url, additional_headers=headers, open_timeout=10)


def receive(socket, count: int) -> list[dict]:
    return [json.loads(socket.recv(timeout=10)) for _ in range(count)]


def test_only_logged_in_users_from_an_allowed_origin_connect(web, alice):
    with pytest.raises(InvalidStatus):  # no session: refused before the socket opens
        ws(web).recv(timeout=5)
    session = login(web, "alice", "pw-alice")
    with pytest.raises(InvalidStatus):
        ws(web, session, origin="http://evil.example").recv(timeout=5)
    with ws(web, session) as socket:
        assert receive(socket, 1)[0]["kind"] == "hello"


def test_transitions_arrive_in_order_and_a_reconnect_resumes_exactly_after_the_last_seen(
    web, alice, settings
):
    settings.GPUQ_EVENT_TICKS = False  # only the changes made here: no tick writing its own events
    session = login(web, "alice", "pw-alice")
    job = make_job(alice, status=Status.PENDING)
    with ws(web, session) as socket:
        hello = receive(socket, 1)[0]
        transition(job, Status.PAUSED, reason="first")
        transition(job, Status.PENDING, reason="second")
        seen = receive(socket, 2)
    assert [(e["kind"], e["data"]["from"], e["data"]["status"], e["data"]["reason"]) for e in seen] == [
        ("job", "pending", "paused", "first"),
        ("job", "paused", "pending", "second"),
    ]
    assert seen[0]["id"] > hello["id"] and seen[1]["id"] > seen[0]["id"]
    assert seen[0]["data"]["owner"] == "alice" and "argv" not in seen[0]["data"]

    # While this client is away: three more changes, and a second job. Another client watches them go
    # by, so the relay has handed them on before the first one comes back: they must come from the
    # backlog, then the hello that starts the live stream.
    with ws(web, session) as watcher:
        receive(watcher, 1)
        transition(job, Status.PAUSED, reason="third")
        other = make_job(alice)
        transition(job, Status.PENDING, reason="fourth")
        job_cancel(job=other, user=alice)
        watched = receive(watcher, 3)
    missed = list(Event.objects.filter(seq__gt=seen[-1]["id"]).order_by("seq").values_list("seq", flat=True))
    assert [e["id"] for e in watched] == missed and len(missed) == 3

    with ws(web, session, after=seen[-1]["id"]) as socket:
        backlog = receive(socket, 4)
        transition(job, Status.PAUSED, reason="live again")
        live = receive(socket, 1)[0]
    assert [e["id"] for e in backlog[:3]] == missed  # each missed event once, in order
    assert [e["data"]["reason"] for e in backlog[:3]] == ["third", "fourth", "cancelled by alice"]
    assert backlog[3] == {"kind": "hello", "id": missed[-1]}
    assert live["data"]["reason"] == "live again" and live["id"] > missed[-1]


def test_progress_and_node_changes_are_events_too(web, alice, root, node):
    session = login(web, "alice", "pw-alice")
    job = make_job(alice, status=Status.RUNNING)
    with ws(web, session) as socket:
        receive(socket, 1)
        emit_progress(job.pk, {"fraction": 0.5})
        node_set_drained(node=node, user=root, drained=True)
        progress, drained = receive(socket, 2)
    assert (progress["kind"], progress["job"], progress["data"]["progress"]) == (
        "progress",
        job.pk,
        {"fraction": 0.5},
    )
    assert (drained["kind"], drained["data"]) == ("node", {"name": "testnode", "drained": True})


def test_an_origin_must_match_scheme_host_and_port_exactly(web, alice):
    """A page served on another port of the same host (another app, a developer's server) is another
    origin: the browser would send the user's cookie, so the server must refuse it."""
    session = login(web, "alice", "pw-alice")
    port = int(web.rsplit(":", 1)[1])
    for origin in (
        f"http://127.0.0.1:{port + 1 if port < 65535 else port - 1}",
        "http://localhost:9999",
        f"https://127.0.0.1:{port}",
        "null",
    ):
        with pytest.raises(InvalidStatus) as refused:
            ws(web, session, origin=origin).recv(timeout=5)
        assert refused.value.response.status_code == 403, origin
    with ws(web, session, origin=f"http://127.0.0.1:{port}") as socket:
        assert receive(socket, 1)[0]["kind"] == "hello"


def test_others_see_a_job_as_the_queue_shows_it_and_a_deactivated_user_is_cut_off(
    start_web, alice, bob, node, root, settings
):
    settings.GPUQ_EVENT_TICKS = False
    web = start_web(GPUQ_WS_RECHECK_SECONDS="0.3")
    job = make_job(alice, status=Status.RUNNING, progress={"fraction": 0.1, "loss": 2.5})
    with ws(web, login(web, "alice", "pw-alice")) as mine, ws(web, login(web, "bob", "pw-bob")) as theirs:
        receive(mine, 1), receive(theirs, 1)
        emit_progress(job.pk, {"fraction": 0.5, "loss": 1.25})
        transition(job, Status.PAUSED, reason="paused at step 500")
        node_set_drained(node=node, user=root, drained=True)  # the last of the three, to everyone
        alice_got, bob_got = receive(mine, 3), receive(theirs, 2)

        get_user_model().objects.filter(pk=bob.pk).update(is_active=False)
        with pytest.raises(ConnectionClosed) as closed:
            theirs.recv(timeout=30)
        node_set_drained(node=node, user=root, drained=False)
        assert receive(mine, 1)[0]["data"] == {"name": "testnode", "drained": False}
    assert [e["kind"] for e in alice_got] == ["progress", "job", "node"]
    assert alice_got[0]["data"]["progress"] == {"fraction": 0.5, "loss": 1.25}
    assert alice_got[1]["data"]["progress"] == {"fraction": 0.1, "loss": 2.5}
    assert alice_got[1]["data"]["reason"] == "paused at step 500"
    assert [e["kind"] for e in bob_got] == ["job", "node"]
    assert bob_got[0]["id"] == alice_got[1]["id"] and bob_got[0]["data"]["status"] == "paused"
    assert "progress" not in bob_got[0]["data"] and "reason" not in bob_got[0]["data"]
    assert closed.value.rcvd.code == 4403
