"""DRF authentication with hashed, expiring API tokens (`Authorization: Token <key>` or `Bearer <key>`).

Wrong tokens are counted per address: past GPUQ_THROTTLE_AUTH_FAILURES, every token from that address is
answered 429 before any lookup. This has to happen here: DRF authenticates before its throttles run, so a
wrong token's 401 would never meet one.
"""

from datetime import timedelta

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.models import ApiToken
from accounts.throttling import AnonThrottle, client_address, token_failures


class HashedTokenAuthentication(authentication.BaseAuthentication):
    keywords = ("token", "bearer")

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower().decode(errors="replace") not in self.keywords:
            return None
        failures, address = token_failures(), client_address(request)
        if failures is not None and (wait := failures.wait(address)) is not None:
            raise exceptions.Throttled(wait, detail="Too many wrong tokens from this address.")
        token = None
        if len(header) == 2:
            token = ApiToken.find(header[1].decode(errors="replace"))
        if token is None or not token.user.is_active:
            if failures is not None:
                failures.record(address)
            if len(header) != 2:
                raise exceptions.AuthenticationFailed("Authorization header: expected 'Token <key>'.")
            raise exceptions.AuthenticationFailed("Invalid or expired token.")
        now = timezone.now()
        # Record use at most once a minute: a write per request would serialise readers on SQLite.
        if token.last_used_at is None or now - token.last_used_at > timedelta(minutes=1):
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        return token.user, token

    def authenticate_header(self, request):
        return "Token"


class AnonymousRateLimit(authentication.BaseAuthentication):
    """Last of the authentication classes: a request that none of the others authenticated counts
    against its address's GPUQ_THROTTLE_ANON. Done here, not among the throttles, because DRF checks
    permissions before throttles and every endpoint needs a login: an anonymous request would be a 401
    without ever being counted."""

    def authenticate(self, request):
        throttle = AnonThrottle()
        if not throttle.allow_request(request, None):
            raise exceptions.Throttled(throttle.wait(), detail="Too many requests from this address.")
        return None
