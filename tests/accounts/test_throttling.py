"""Rate limits on the API: wrong tokens per address, each user, anonymous addresses and job submissions;
every 429 says when to retry."""

import asyncio
import json

import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.test import APIClient

from accounts.models import ApiToken
from accounts.throttling import EarlyRefusal
from queueproject.asgi import application
from queueproject.env import env_rate
from scheduling.models import JobTemplate
from tests.conftest import api_for

WRONG = "Token gpuq_not-a-real-key"


def from_address(address: str, authorization: str = "", **extra) -> APIClient:
    client = APIClient(REMOTE_ADDR=address, **extra)
    if authorization:
        client.credentials(HTTP_AUTHORIZATION=authorization)
    return client


def assert_throttled(response):
    assert response.status_code == 429, response.content
    wait = int(response["Retry-After"])
    assert wait >= 1
    assert response.json()["retry_after"] == wait
    assert "detail" in response.json()


def first_429(client, path: str, limit: int, method: str = "get", **kwargs) -> int:
    """The number of the first request (1-based) answered 429, or fail after `limit` requests."""
    for n in range(1, limit + 1):
        response = getattr(client, method)(path, **kwargs)
        if response.status_code == 429:
            assert_throttled(response)
            return n
    raise AssertionError(f"no 429 in {limit} requests")


def test_wrong_tokens_from_one_address_meet_a_429_long_before_2000(alice):
    # Production defaults (GPUQ_THROTTLE_AUTH_FAILURES): the tests do not change them.
    attacker = from_address("203.0.113.7", WRONG)
    assert attacker.get("/api/v1/jobs").status_code == 401
    assert first_429(attacker, "/api/v1/jobs", 2000) <= 100


def test_a_blocked_address_is_refused_even_a_right_token(alice, settings):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = "3/min"
    _, key = ApiToken.issue(user=alice)
    attacker = from_address("203.0.113.7", WRONG)
    assert [attacker.get("/api/v1/jobs").status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(from_address("203.0.113.7", f"Token {key}").get("/api/v1/jobs"))


def test_the_right_token_from_another_address_still_works(alice, settings):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = "3/min"
    _, key = ApiToken.issue(user=alice)
    first_429(from_address("203.0.113.7", WRONG), "/api/v1/jobs", 10)
    assert from_address("198.51.100.2", f"Token {key}").get("/api/v1/jobs").status_code == 200


def test_a_forged_forwarded_for_header_does_not_make_a_new_address(alice, settings):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = "3/min"
    attacker = from_address("203.0.113.7", WRONG)
    statuses = [
        attacker.get("/api/v1/jobs", HTTP_X_FORWARDED_FOR=f"10.0.0.{n}").status_code for n in range(1, 6)
    ]
    assert statuses == [401, 401, 401, 429, 429]


def test_wrong_tokens_wait_out_the_window(alice, settings, monkeypatch):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = "2/min"
    import accounts.throttling

    now = accounts.throttling.clock()
    monkeypatch.setattr(accounts.throttling, "clock", lambda: now)
    _, key = ApiToken.issue(user=alice)
    attacker = from_address("203.0.113.7", WRONG)
    assert [attacker.get("/api/v1/jobs").status_code for _ in range(3)] == [401, 401, 429]
    monkeypatch.setattr(accounts.throttling, "clock", lambda: now + 61)
    assert from_address("203.0.113.7", f"Token {key}").get("/api/v1/jobs").status_code == 200


def test_one_users_flood_is_throttled_while_another_user_is_served(alice, bob, settings):
    settings.GPUQ_THROTTLE_USER = "5/min"
    flooder = api_for(alice)
    assert first_429(flooder, "/api/v1/queue/me", 10) == 6
    assert api_for(bob).get("/api/v1/queue/me").status_code == 200


@pytest.fixture
def echo(db):
    return JobTemplate.objects.create(
        name="echo",
        argv_template=["echo", "{text}"],
        params_schema={"type": "object", "properties": {"text": {"type": "string"}}},
    )


def test_a_submission_flood_is_throttled_for_that_user_only(alice, bob, node, echo, settings):
    settings.GPUQ_THROTTLE_SUBMIT = "3/min"
    flooder = api_for(alice)
    body = {"template": "echo", "params": {"text": "hi"}}
    assert first_429(flooder, "/api/v1/jobs", 10, method="post", data=body, format="json") == 4
    assert flooder.get("/api/v1/jobs").status_code == 200  # reading is not submitting
    assert api_for(bob).post("/api/v1/jobs", body, format="json").status_code == 201


def test_anonymous_requests_are_counted_per_address(db, settings):
    settings.GPUQ_THROTTLE_ANON = "3/min"
    anonymous = from_address("203.0.113.9")
    assert [anonymous.get("/api/v1/jobs").status_code for _ in range(3)] == [401, 401, 401]
    assert_throttled(anonymous.get("/api/v1/jobs"))
    assert from_address("198.51.100.3").get("/api/v1/jobs").status_code == 401


def test_an_empty_rate_turns_the_limit_off(alice, settings):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = None
    settings.GPUQ_THROTTLE_USER = None
    attacker = from_address("203.0.113.7", WRONG)
    assert {attacker.get("/api/v1/jobs").status_code for _ in range(40)} == {401}
    client = api_for(alice)
    assert {client.get("/api/v1/queue/me").status_code for _ in range(40)} == {200}


def test_rates_are_checked_at_start(monkeypatch):
    monkeypatch.setenv("GPUQ_THROTTLE_USER", "")
    assert env_rate("GPUQ_THROTTLE_USER", "60/min") is None
    monkeypatch.setenv("GPUQ_THROTTLE_USER", "30/hour")
    assert env_rate("GPUQ_THROTTLE_USER", "60/min") == "30/hour"
    for bad in ("lots", "60", "60/week", "0/min", "-1/s", "x/min"):
        monkeypatch.setenv("GPUQ_THROTTLE_USER", bad)
        with pytest.raises(ImproperlyConfigured, match="GPUQ_THROTTLE_USER"):
            env_rate("GPUQ_THROTTLE_USER", "60/min")


# --- throttled clients are answered before Django (accounts.throttling.EarlyRefusal) ---


def asgi_call(app, key: str, *, method="GET", path="/api/v1/queue/me", address="198.51.100.8"):
    """Send one HTTP request through an ASGI app; return the messages it sent back."""
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "headers": [(b"authorization", f"Token {key}".encode())],
        "client": (address, 40000),
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


class Django:
    """Stands for Django behind EarlyRefusal: records what reached it."""

    def __init__(self):
        self.reached = []

    async def __call__(self, scope, receive, send):
        self.reached.append((scope["method"], scope["path"]))


def assert_early_429(sent):
    assert sent[0]["status"] == 429
    headers = dict(sent[0]["headers"])
    assert int(headers[b"retry-after"]) >= 1
    assert json.loads(sent[1]["body"])["retry_after"] == int(headers[b"retry-after"])


def test_a_throttled_token_is_refused_before_django(alice, bob, settings):
    settings.GPUQ_THROTTLE_USER = "2/min"
    _, key = ApiToken.issue(user=alice)
    _, other_key = ApiToken.issue(user=bob)
    assert first_429(from_address("198.51.100.8", f"Token {key}"), "/api/v1/queue/me", 5) == 3
    assert_early_429(asgi_call(application, key))  # gpuq's real ASGI application
    django = Django()
    assert_early_429(asgi_call(EarlyRefusal(django), key, path="/api/v1/jobs"))
    asgi_call(EarlyRefusal(django), other_key)
    assert django.reached == [("GET", "/api/v1/queue/me")]


def test_a_submit_refusal_is_early_for_submissions_only(alice, node, echo, settings):
    settings.GPUQ_THROTTLE_SUBMIT = "1/min"
    _, key = ApiToken.issue(user=alice)
    client = from_address("198.51.100.8", f"Token {key}")
    body = {"template": "echo", "params": {"text": "hi"}}
    assert first_429(client, "/api/v1/jobs", 3, method="post", data=body, format="json") == 2
    django = Django()
    assert_early_429(asgi_call(EarlyRefusal(django), key, method="POST", path="/api/v1/jobs"))
    asgi_call(EarlyRefusal(django), key, method="GET", path="/api/v1/jobs")
    assert django.reached == [("GET", "/api/v1/jobs")]


def test_an_address_blocked_for_wrong_tokens_is_refused_before_django(alice, settings):
    settings.GPUQ_THROTTLE_AUTH_FAILURES = "2/min"
    _, key = ApiToken.issue(user=alice)
    first_429(from_address("203.0.113.7", WRONG), "/api/v1/jobs", 5)
    django = Django()
    assert_early_429(asgi_call(EarlyRefusal(django), key, address="203.0.113.7"))
    asgi_call(EarlyRefusal(django), key, address="198.51.100.9")
    assert django.reached == [("GET", "/api/v1/queue/me")]
