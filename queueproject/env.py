"""Read settings from the environment, failing loudly on a value that cannot be parsed."""

import os
import re

from django.core.exceptions import ImproperlyConfigured


def env_str(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ImproperlyConfigured(f"{name}={raw!r}: expected one of 1/0, true/false, yes/no, on/off")


def env_float(name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected a number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    return value


def env_int(name: str, default: int, *, minimum: int = 0) -> int:
    value = env_float(name, default, minimum=minimum)
    if value != int(value):
        raise ImproperlyConfigured(f"{name}={value!r}: expected a whole number")
    return int(value)


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_choice(name: str, default: str, choices: list[str]) -> str:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if raw not in choices:
        raise ImproperlyConfigured(f"{name}={raw!r}: expected one of {', '.join(choices)}")
    return raw


def env_proxy_ssl_header(name: str) -> tuple[str, str] | None:
    """`HEADER,VALUE`: the header a TLS proxy sets and its value on HTTPS requests, as Django's
    SECURE_PROXY_SSL_HEADER wants it. `X-Forwarded-Proto,https` and `HTTP_X_FORWARDED_PROTO,https` are the
    same; unset or empty is None (no proxy is trusted)."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return None
    parts = [part.strip() for part in raw.split(",")]
    if len(parts) != 2 or not parts[1] or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]*", parts[0]):
        raise ImproperlyConfigured(f"{name}={raw!r}: expected HEADER,VALUE, e.g. X-Forwarded-Proto,https")
    header = parts[0].upper().replace("-", "_")
    return (header if header.startswith("HTTP_") else f"HTTP_{header}"), parts[1]


RATE_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_rate(rate: str) -> tuple[int, int]:
    """DRF's "N/period" (period: s, sec, m, min, h, hour, d, day) as (requests, seconds)."""
    count, _, period = rate.partition("/")
    if not count.strip().isdigit() or int(count) < 1 or period.strip()[:1] not in RATE_PERIODS:
        raise ValueError(rate)
    return int(count), RATE_PERIODS[period.strip()[0]]


def env_rate(name: str, default: str) -> str | None:
    """A rate such as "60/min"; an empty value turns the limit off (None)."""
    raw = os.environ.get(name, default).strip()
    if raw == "" or raw.lower() in ("off", "none"):
        return None
    try:
        parse_rate(raw)
    except ValueError:
        raise ImproperlyConfigured(
            f"{name}={raw!r}: expected N/period, e.g. 60/min (period s, min, hour or day), or empty for no limit"
        ) from None
    return raw


def env_networks(name: str, default: list[str]) -> list:
    """Comma-separated addresses or CIDR networks (`10.0.0.0/8,::1`), as `ipaddress` networks."""
    import ipaddress

    networks = []
    for item in env_list(name, default):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name}: {item!r} is not an address or a CIDR network") from None
    return networks
