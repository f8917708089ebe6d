"""HTTP requests run their views on a few long-lived threads that keep their database connection
(queueproject/request_threads.py), through the very ASGI application gpuq_web serves."""

import asyncio
import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.db import connection, connections
from django.http import JsonResponse
from django.urls import path

from queueproject.request_threads import RequestThreads

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.urls(__name__)]

release = threading.Event()


def where(request):
    """Which thread ran this view, and which database connection it used."""
    if request.GET.get("hold"):
        assert release.wait(60)
    connection.ensure_connection()
    return JsonResponse({"thread": threading.current_thread().name, "connection": id(connection.connection)})


urlpatterns = [path("where", where)]


async def get(app, query: str = "") -> dict:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/where",
        "raw_path": b"/where",
        "root_path": "",
        "query_string": query.encode(),
        "headers": [(b"host", b"testserver")],
        "client": ("127.0.0.1", 40000),
        "server": ("testserver", 80),
    }
    talk = ApplicationCommunicator(app, scope)
    await talk.send_input({"type": "http.request", "body": b"", "more_body": False})
    start = await talk.receive_output(60)
    assert start["status"] == 200, start
    body = b""
    while True:
        message = await talk.receive_output(60)
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    return json.loads(body)


def test_requests_reuse_a_thread_and_its_database_connection(monkeypatch):
    from queueproject.asgi import application  # what gpuq_web serves: GPUQ_WEB_THREADS is on by default

    # The tests close every connection after each request (CONN_MAX_AGE 0); gpuq keeps them 5 minutes.
    monkeypatch.setitem(connections.settings["default"], "CONN_MAX_AGE", 300)
    threads = application.application_mapping["http"].app
    assert isinstance(threads, RequestThreads)

    async def three():
        return [await get(application) for _ in range(3)]

    try:
        seen = asyncio.run(three())
    finally:
        threads.close_connections()
    assert {s["thread"] for s in seen} == {seen[0]["thread"]}
    assert seen[0]["thread"].startswith("gpuq-request-")
    assert {s["connection"] for s in seen} == {seen[0]["connection"]}  # not a new connection each time


def test_without_them_each_request_had_a_thread_and_a_connection_of_its_own():
    """The behaviour RequestThreads replaces (GPUQ_WEB_THREADS=0): Django's ASGI handler alone."""
    from django.core.asgi import get_asgi_application

    django_asgi = get_asgi_application()

    async def two():
        return [await get(django_asgi) for _ in range(2)]

    first, second = asyncio.run(two())
    assert not first["thread"].startswith("gpuq-request-")
    assert first["thread"] != second["thread"] or first["connection"] != second["connection"]


def test_a_request_that_finds_every_thread_busy_gets_its_own_and_does_not_wait():
    from django.core.asgi import get_asgi_application

    app = RequestThreads(get_asgi_application(), threads=1)
    release.clear()

    async def both():
        held = asyncio.ensure_future(get(app, "hold=1"))  # takes the one long-lived thread, and waits
        for _ in range(6000):  # until it holds the thread (a minute at most)
            if not app._idle:
                break
            await asyncio.sleep(0.01)
        other = await get(app)  # answered meanwhile, on a thread of its own
        release.set()
        return await held, other

    try:
        held, other = asyncio.run(both())
    finally:
        release.set()
        app.close_connections()
    assert held["thread"] == "gpuq-request-0_0"
    assert not other["thread"].startswith("gpuq-request-")


def test_the_middleware_and_the_view_run_in_one_hop_to_the_request_thread(monkeypatch):
    """Every middleware and view of gpuq is synchronous: the handler gpuq_web serves runs the whole chain
    in one hop to the request's thread (queueproject/sync_handler.py), never back to the event loop in
    between, where Django's own handler went back and forth for its sync-only middlewares."""
    from asgiref import sync
    from django.core.asgi import get_asgi_application

    from queueproject.asgi import application

    to_loop, to_thread = sync.AsyncToSync.__call__, sync.SyncToAsync.__call__
    hops = {}

    def counted_to_loop(self, *args, **kwargs):
        hops["to the loop"] += 1
        return to_loop(self, *args, **kwargs)

    def counted_to_thread(self, *args, **kwargs):
        hops["to a thread"] += 1
        return to_thread(self, *args, **kwargs)

    monkeypatch.setattr(sync.AsyncToSync, "__call__", counted_to_loop)
    monkeypatch.setattr(sync.SyncToAsync, "__call__", counted_to_thread)

    def hops_of(app) -> dict:
        hops.update({"to the loop": 0, "to a thread": 0})
        asyncio.run(get(app))
        return dict(hops)

    threads = application.application_mapping["http"].app
    try:
        ours = hops_of(application)
    finally:
        threads.close_connections()
    djangos = hops_of(get_asgi_application())
    # The request's start, the chain with its view, and the response's end: a hop each at most.
    assert ours["to the loop"] == 0 and ours["to a thread"] <= 3, ours
    assert djangos["to the loop"] >= 1 and djangos["to a thread"] > ours["to a thread"], (djangos, ours)
