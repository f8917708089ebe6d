"""SECRET_KEY: from the environment, or made once per install (mode 0600) for the embedded default."""

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# gpuq's former built-in key: it is public, so nothing may be signed with it.
OLD_PUBLIC_DEFAULT = "gpuq-embedded-development-secret-change-me-in-production"
# What Django's deploy check (security.W009) asks of a key.
MIN_LENGTH = 50
MIN_DISTINCT = 5
GENERATE = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"


def secret_key_setting(*, key_file: Path | None) -> str:
    """The SECRET_KEY environment variable when it is set; else the key kept in `key_file`, made on first use;
    with no key file (a database is configured, so processes may run on several machines) refuse to start."""
    value = os.environ.get("SECRET_KEY", "")
    if value:
        return checked(value, source="SECRET_KEY")
    if key_file is None:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set: with DATABASE_URL set, gpuq needs a secret key, and every machine of one "
            "gpuq must share it (it signs sessions, CSRF tokens and the tasks handed to nodes); "
            f"generate one with {GENERATE}"
        )
    return checked(read_or_create(key_file), source=f"SECRET_KEY (from {key_file})")


def checked(value: str, *, source: str) -> str:
    """`value`, unless Django's deploy check would call it weak or it is gpuq's old public key."""
    if value == OLD_PUBLIC_DEFAULT:
        reason = "is gpuq's old public default"
    elif value.startswith("django-insecure-"):
        reason = "starts with django-insecure-"
    elif len(value) < MIN_LENGTH:
        reason = f"is shorter than {MIN_LENGTH} characters"
    elif len(set(value)) < MIN_DISTINCT:
        reason = f"has fewer than {MIN_DISTINCT} distinct characters"
    else:
        return value
    raise ImproperlyConfigured(f"{source} {reason}: generate one with {GENERATE}")


def read_or_create(path: Path) -> str:
    """The key kept in `path`; made on first use, readable by this account only (0600). Processes starting
    together agree on one key: each writes a whole key to a temporary file of its own beside `path` and
    links it into place only if no key is there yet (a link never replaces), so the first link wins and no
    process ever reads a half-written key."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    fd = os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(secrets.token_urlsafe(50) + "\n")
            file.flush()
            os.fsync(file.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass  # another process linked its key first: that one is the install's key
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
