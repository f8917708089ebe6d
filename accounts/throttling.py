"""Rate limits on the API: per user, per anonymous address, on job submission, and on wrong tokens.

Rates are the GPUQ_THROTTLE_* settings ("N/period", None = no limit), read on every request so that they
can be changed in tests. Counts live in Django's cache (per process by default: see the README).
"""

import hashlib
import math
import time

from django.conf import settings
from django.core.cache import cache
from rest_framework.throttling import AnonRateThrottle, BaseThrottle, UserRateThrottle

from queueproject.env import parse_rate


def client_address(request) -> str:
    """The client's address: REMOTE_ADDR, or X-Forwarded-For behind GPUQ_NUM_PROXIES proxies (DRF's)."""
    return BaseThrottle().get_ident(request) or "unknown"


class UserThrottle(UserRateThrottle):
    """Every authenticated user: GPUQ_THROTTLE_USER requests per period."""

    setting = "GPUQ_THROTTLE_USER"

    def get_rate(self):
        return getattr(settings, self.setting)

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
