"""The websocket origin check: a socket opens only from the site's own origin (scheme, host and port, all
three exactly) or from one of CSRF_TRUSTED_ORIGINS, written exactly; never without an Origin header.

Websockets are authenticated by the session cookie, which a browser sends whatever page opens the socket:
the origin is what tells the site's own pages from another site's (cross-site websocket hijacking).
Channels' AllowedHostsOriginValidator compares host names only, so a page on another port of the same host
(`http://localhost:9999`) passed it.
"""

from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import split_domain_port, validate_host

DEFAULT_PORTS = {"http": 80, "https": 443}


def canonical(origin: str) -> str | None:
    """`scheme://host:port` with the port always written and the host in lower case, or None when
    `origin` is not an http(s) origin (`null`, a path, a user name, a bad port)."""
    try:
        parts = urlsplit(origin.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname or "*" in parts.hostname:
        return None
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username is not None:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}:{port or DEFAULT_PORTS[parts.scheme]}"


def own_origin(scope) -> str | None:
    """The origin of the site as this connection reached it, the way Django reads a request's: the
    scheme from the connection (wss is https) or SECURE_PROXY_SSL_HEADER, the host from Host (or
    X-Forwarded-Host with USE_X_FORWARDED_HOST) and only when ALLOWED_HOSTS allows it."""
    headers = {name.decode("latin1").lower(): value.decode("latin1") for name, value in scope["headers"]}
    scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
    proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy:
        name, secure = proxy
        header = name.removeprefix("HTTP_").lower().replace("_", "-")
        if header in headers:
            scheme = "https" if headers[header].split(",", 1)[0].strip() == secure else "http"
    host = headers.get("host", "")
    if getattr(settings, "USE_X_FORWARDED_HOST", False) and "x-forwarded-host" in headers:
        host = headers["x-forwarded-host"]
    allowed = settings.ALLOWED_HOSTS
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]  # as Django does
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, allowed):
        return None
    return canonical(f"{scheme}://{host}")


def origin_allowed(scope) -> bool:
    origins = [value.decode("latin1") for name, value in scope["headers"] if name.lower() == b"origin"]
    if len(origins) != 1 or (origin := canonical(origins[0])) is None:
        return False
    if origin == own_origin(scope):
        return True
    return origin in {canonical(trusted) for trusted in settings.CSRF_TRUSTED_ORIGINS}


class SameOriginValidator:
    """ASGI middleware for websockets: refuses (403, before the socket opens) any origin but these."""

    def __init__(self, application):
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and origin_allowed(scope):
            return await self.application(scope, receive, send)
        return await WebsocketDenier()(scope, receive, send)
