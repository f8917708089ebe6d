"""The websocket origin check (queueproject.origins): scheme, host and port of the Origin must be the
site's own, as the connection reached it, or one of CSRF_TRUSTED_ORIGINS, exactly."""

import asyncio

import pytest
from channels.testing import WebsocketCommunicator
from django.test import Client

from queueproject.asgi import application
from queueproject.origins import origin_allowed
from scheduling.live import relay

PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


def scope(origin: str | list[str] | None, host: str, scheme: str = "ws", **headers) -> dict:
    origins = [origin] if isinstance(origin, str) else origin or []
    pairs = [(b"host", host.encode())] + [(b"origin", o.encode()) for o in origins]
    pairs += [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    return {"type": "websocket", "scheme": scheme, "headers": pairs}


CASES = [
    # origin, host, scheme, extra headers, SECURE_PROXY_SSL_HEADER, allowed
    ("http://gpuq.example.org:8000", "gpuq.example.org:8000", "ws", {}, None, True),
    ("http://GPUQ.example.org:8000", "gpuq.example.org:8000", "ws", {}, None, True),
    ("http://gpuq.example.org:9999", "gpuq.example.org:8000", "ws", {}, None, False),  # another port
    ("http://gpuq.example.org", "gpuq.example.org:8000", "ws", {}, None, False),  # port 80 is another
    ("https://gpuq.example.org:8000", "gpuq.example.org:8000", "ws", {}, None, False),  # another scheme
    ("http://evil.example:8000", "gpuq.example.org:8000", "ws", {}, None, False),
    ("http://gpuq.example.org:8000.evil.example", "gpuq.example.org:8000", "ws", {}, None, False),
    (None, "gpuq.example.org:8000", "ws", {}, None, False),  # no Origin: not a page of this site
    ("null", "gpuq.example.org:8000", "ws", {}, None, False),
    (["http://gpuq.example.org:8000"] * 2, "gpuq.example.org:8000", "ws", {}, None, False),
    ("http://gpuq.example.org:80", "gpuq.example.org", "ws", {}, None, True),  # default ports
    ("http://gpuq.example.org", "gpuq.example.org:80", "ws", {}, None, True),
    ("https://gpuq.example.org", "gpuq.example.org", "wss", {}, None, True),
    ("http://gpuq.example.org", "gpuq.example.org", "wss", {}, None, False),
    ("http://[::1]:8000", "[::1]:8000", "ws", {}, None, True),
    ("http://evil.example:8000", "evil.example:8000", "ws", {}, None, False),  # a host not allowed
    # Behind a TLS proxy: the scheme comes from SECURE_PROXY_SSL_HEADER, only when it is configured.
    ("https://127.0.0.1", "127.0.0.1", "ws", {"x_forwarded_proto": "https"}, PROXY, True),
    ("http://127.0.0.1", "127.0.0.1", "ws", {"x_forwarded_proto": "https"}, PROXY, False),
    ("https://127.0.0.1", "127.0.0.1", "ws", {"x_forwarded_proto": "https"}, None, False),
    ("http://127.0.0.1", "127.0.0.1", "ws", {}, PROXY, True),  # no header: the connection's scheme
    # A trusted origin, whatever host the request names (a proxy's public name), written exactly.
    ("https://queue.example.org", "10.0.0.5:8000", "ws", {}, None, True),
    ("https://queue.example.org:443", "10.0.0.5:8000", "ws", {}, None, True),
    ("https://queue.example.org:8443", "10.0.0.5:8000", "ws", {}, None, False),
    ("http://queue.example.org", "10.0.0.5:8000", "ws", {}, None, False),
    ("https://sub.queue.example.org", "10.0.0.5:8000", "ws", {}, None, False),  # wildcards are not honoured
]


@pytest.mark.parametrize("origin, host, scheme, headers, proxy, allowed", CASES)
def test_origin_rule(settings, origin, host, scheme, headers, proxy, allowed):
    settings.DEBUG = False
    settings.ALLOWED_HOSTS = ["gpuq.example.org", "127.0.0.1", "[::1]", "10.0.0.5"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://queue.example.org", "https://*.queue.example.org"]
    settings.SECURE_PROXY_SSL_HEADER = proxy
    assert origin_allowed(scope(origin, host, scheme, **headers)) is allowed


@pytest.mark.django_db(transaction=True)
def test_the_asgi_application_refuses_another_port_and_accepts_a_trusted_origin(alice, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://queue.example.org"]
    client = Client()
    client.force_login(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    answers = []

    async def attempt(origin: str) -> bool:
        headers = [(b"host", b"127.0.0.1:8000"), (b"origin", origin.encode()), (b"cookie", cookie)]
        communicator = WebsocketCommunicator(application, "/ws/events", headers)
        connected, _ = await communicator.connect(timeout=10)
        if connected:
            assert (await communicator.receive_json_from(timeout=10))["kind"] == "hello"
            await communicator.disconnect()
        return connected

    async def main():
        try:
            for origin in ("http://127.0.0.1:9999", "http://127.0.0.1:8000", "https://queue.example.org"):
                answers.append(await attempt(origin))
        finally:
            await relay.stop()

    asyncio.run(main())
    assert answers == [False, True, True]
