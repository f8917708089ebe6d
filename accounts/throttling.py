"""Rate limits on the API: per user, per anonymous address, on job submission, and on wrong tokens.

Rates are the GPUQ_THROTTLE_* settings ("N/period", None = no limit), read on every request so that they
can be changed in tests. Counts live in Django's cache (per process by default: see the README).
"""

import asyncio
import hashlib
import json
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from queueproject.env import parse_rate


def address_from(remote_addr: str | None, forwarded_for: str | None) -> str:
    """The client's address: REMOTE_ADDR, or behind GPUQ_NUM_PROXIES trusted proxies the address the
    outermost of them saw in X-Forwarded-For (a client can forge the header's other entries)."""
    proxies = api_settings.NUM_PROXIES or 0
    if proxies and forwarded_for:
        addresses = forwarded_for.split(",")
        return addresses[-min(proxies, len(addresses))].strip()
    return remote_addr or "unknown"


def client_address(request) -> str:
    return address_from(request.META.get("REMOTE_ADDR"), request.META.get("HTTP_X_FORWARDED_FOR"))


def _refused_key(scope: str, digest: str) -> str:
    return f"gpuq:refused:{scope}:{digest}"


class UserThrottle(UserRateThrottle):
    """Every authenticated user: GPUQ_THROTTLE_USER requests per period. A refusal of a token's request
    is remembered with its end, so that `EarlyRefusal` answers that token's next requests before Django."""

    setting = "GPUQ_THROTTLE_USER"

    def get_rate(self):
        return getattr(settings, self.setting)

    def throttle_failure(self):
        wait = self.wait()
        token = getattr(self._request, "auth", None)
        if wait and hasattr(token, "digest"):
            cache.set(_refused_key(self.scope, token.digest), clock() + wait, math.ceil(wait))
        return False

    def allow_request(self, request, view):
        self._request = request
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        if not request.user or not request.user.is_authenticated:
            return None  # anonymous requests are AnonThrottle's
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonThrottle(AnonRateThrottle):
    """Every anonymous address: GPUQ_THROTTLE_ANON requests per period. Checked by
    accounts.authentication.AnonymousRateLimit once no credentials authenticated the request (so it
    must not read `request.user`, which is still being decided)."""

    def get_rate(self):
        return settings.GPUQ_THROTTLE_ANON

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": client_address(request)}


class SubmitThrottle(UserThrottle):
    """Job submissions (POST) of one user: GPUQ_THROTTLE_SUBMIT per period, on top of the user's rate."""

    scope = "submit"
    setting = "GPUQ_THROTTLE_SUBMIT"

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


clock = time.time  # FailureWindow's clock; tests move it instead of sleeping


class FailureWindow:
    """At most `limit` failures of one key (an address, a username) in any `seconds`: a sliding window of
    the failures' times in the cache. Two processes or threads may both read before either writes and
    lose a failure between them: a limit a little loose under races, never a refusal of the innocent."""

    def __init__(self, prefix: str, limit: int, seconds: int):
        self.prefix, self.limit, self.seconds = prefix, limit, seconds

    def _key(self, ident: str) -> str:
        return f"gpuq:{self.prefix}:{hashlib.sha256(ident.encode()).hexdigest()[:32]}"

    def _recent(self, ident: str, now: float) -> list[float]:
        return [t for t in cache.get(self._key(ident), []) if t > now - self.seconds]

    def wait(self, ident: str) -> int | None:
        """Seconds until `ident` may try again, or None when it may try now."""
        now = clock()
        recent = self._recent(ident, now)
        if len(recent) < self.limit:
            return None
        # Allowed again once enough of the oldest failures have left the window.
        return max(1, math.ceil(recent[-self.limit] + self.seconds - now))

    def record(self, ident: str) -> None:
        now = clock()
        recent = self._recent(ident, now)[-self.limit :]
        cache.set(self._key(ident), [*recent, now], self.seconds)

    def clear(self, ident: str) -> None:
        cache.delete(self._key(ident))


def token_failures() -> FailureWindow | None:
    """Wrong or expired tokens per address (GPUQ_THROTTLE_AUTH_FAILURES), or None when it is off."""
    rate = settings.GPUQ_THROTTLE_AUTH_FAILURES
    if rate is None:
        return None
    limit, seconds = parse_rate(rate)
    return FailureWindow("token-failures", limit, seconds)


class EarlyRefusal:
    """ASGI middleware in front of Django for /api/: answers 429, without a thread, a database query or
    Django's middleware, to a token that was refused moments ago and is still waiting out its limit (see
    UserThrottle), and to an address blocked for wrong tokens. Such a request costs the server a hash
    and two cache reads. The answer comes after a pause (PAUSE_SECONDS, at most the wait): a client
    that loops without reading Retry-After then sends a few requests a second per connection instead of
    hundreds, which would otherwise keep the event loop busy and, holding the GIL, slow every other
    request's thread."""

    PAUSE_SECONDS = 0.5

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/api/"):
            wait = early_wait(scope)
            if wait is not None:
                body = json.dumps(
                    {
                        "detail": f"Request was throttled. Expected available in {wait} seconds.",
                        "retry_after": wait,
                    }
                ).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"retry-after", str(wait).encode()),
                    (b"content-length", str(len(body)).encode()),
                ]
                await asyncio.sleep(min(wait, self.PAUSE_SECONDS))
                await send({"type": "http.response.start", "status": 429, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def early_wait(scope) -> int | None:
    """Seconds a request (an ASGI scope) must wait, when that is already known without Django."""
    headers = dict(scope.get("headers") or [])
    words = headers.get(b"authorization", b"").split()
    if len(words) != 2 or words[0].lower() not in (b"token", b"bearer"):
        return None
    now = clock()
    address = address_from(
        (scope.get("client") or [None])[0], headers.get(b"x-forwarded-for", b"").decode("latin-1")
    )
    failures = token_failures()
    if failures is not None and (wait := failures.wait(address)) is not None:
        return wait
    digest = hashlib.sha256(words[1]).hexdigest()
    scopes = ["user", "submit"] if scope["method"] == "POST" and scope["path"] == "/api/v1/jobs" else ["user"]
    untils = [until for s in scopes if (until := cache.get(_refused_key(s, digest))) and until > now]
    return max(1, math.ceil(max(untils) - now)) if untils else None
