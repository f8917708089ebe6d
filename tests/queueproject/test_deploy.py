"""The README's production settings: `check --deploy` is clean with exactly them, and a real Daphne behind
an HTTPS proxy serves pages, logins and websockets with them."""

import json
import re
import secrets
import socket
import subprocess
import sys
from http.cookies import SimpleCookie

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from websockets.sync.client import connect

from tests.conftest import child_env, wait_for
from tests.e2e.conftest import free_port, stop

HTTPS_SETTINGS = ["SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE"]


def production_env(*, fill_key: bool = True) -> dict[str, str]:
    """The environment block of README.md's *Production*, its one placeholder (the key) filled with a new
    key unless `fill_key` is false."""
    text = (settings.BASE_DIR / "README.md").read_text()
    block = re.search(r"<!-- production-env -->\s*```sh\n(.*?)```\s*<!-- /production-env -->", text, re.S)
    assert block, "README.md has no production-env block"
    env = {}
    for line in block.group(1).splitlines():
        if line.strip() and not line.startswith("#"):
            name, equals, value = line.partition("=")
            assert equals and re.fullmatch(r"[A-Z][A-Z0-9_]*", name), f"not NAME=value: {line!r}"
            env[name] = value
    assert [name for name, value in env.items() if value.startswith("<")] == ["SECRET_KEY"]
    if fill_key:
        env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`manage.py check --deploy --fail-level WARNING` with exactly `env`. Its DATABASE_URL names a host that
    does not exist: the check needs no database connection."""
    return subprocess.run(
        [
            sys.executable,
            str(settings.BASE_DIR / "manage.py"),
            "check",
            "--deploy",
            "--fail-level",
            "WARNING",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_with_the_readme_production_settings():
    result = check_deploy(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNING" not in result.stdout + result.stderr


def test_check_deploy_fails_without_the_https_settings():
    env = {name: value for name, value in production_env().items() if name not in HTTPS_SETTINGS}
    result = check_deploy(env)
    assert result.returncode != 0
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stderr, result.stderr


def test_the_readme_placeholder_key_is_refused():
    """Copied without making a key, the README's block stops gpuq instead of running on a public key."""
    result = check_deploy(production_env(fill_key=False))
    assert result.returncode != 0
    assert "SECRET_KEY is shorter than 50 characters" in result.stderr, result.stderr


def cookie(response: httpx.Response, name: str):
    for header in response.headers.get_list("set-cookie"):
        jar = SimpleCookie(header)
        if name in jar:
            return jar[name]
    raise AssertionError(f"no {name} cookie in {response.headers.get_list('set-cookie')}")


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_behind_an_https_proxy_daphne_serves_pages_logins_and_websockets(alice, tmp_path):
    """gpuq_web with the README's settings, reached as the proxy reaches it: http on 127.0.0.1 with the
    public Host and X-Forwarded-Proto: https."""
    production = production_env()
    host = production["ALLOWED_HOSTS"].split(",")[0]
    origin = f"https://{host}"
    proxied = {"Host": host, "X-Forwarded-Proto": "https"}
    env = child_env(
        **{k: v for k, v in production.items() if k not in ("DATABASE_URL", "SECRET_KEY")},
        GPUQ_DATA_DIR=tmp_path,
        GPUQ_LOG_LEVEL="WARNING",
    )
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", str(port)],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"

    def login_page():
        try:
            return httpx.get(f"{base}/accounts/login/", headers=proxied, timeout=2)
        except httpx.TransportError:
            return None

    try:
        page = wait_for(login_page, timeout=60, message="gpuq_web to serve")
        assert page.status_code == 200
        assert page.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains; preload"
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        csrf = cookie(page, "csrftoken")
        assert csrf["secure"] is True

        # What reached the proxy over plain http is sent to https.
        plain = httpx.get(f"{base}/accounts/login/", headers={"Host": host}, timeout=10)
        assert plain.status_code == 301 and plain.headers["location"] == f"{origin}/accounts/login/"

        # The server knows PBKDF2, not the tests' fast hasher.
        hashed = PBKDF2PasswordHasher().encode("pw-alice", "gpuq-test-salt", iterations=1000)
        get_user_model().objects.filter(pk=alice.pk).update(password=hashed)
        login = httpx.post(
            f"{base}/accounts/login/",
            headers={
                **proxied,
                "Origin": origin,
                "Referer": f"{origin}/accounts/login/",
                "Cookie": f"csrftoken={csrf.value}",
            },
            data={"username": "alice", "password": "pw-alice", "csrfmiddlewaretoken": csrf.value},
            timeout=10,
        )
        assert login.status_code == 302, login.text[:500]
        session = cookie(login, "sessionid")
        assert session["secure"] is True and session["httponly"] is True
        queue = httpx.get(f"{base}/", headers={**proxied, "Cookie": f"sessionid={session.value}"}, timeout=10)
        assert queue.status_code == 200  # logged in: the queue page, not a redirect to the login

        # The browser's websocket: wss:// to the proxy, so an https origin and the public host.
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        with connect(
            f"ws://{host}/ws/events",
            sock=sock,
            additional_headers={
                "X-Forwarded-Proto": "https",
                "Origin": origin,
                "Cookie": f"sessionid={session.value}",
            },
            open_timeout=10,
        ) as live:
            assert json.loads(live.recv(timeout=10))["kind"] == "hello"
    finally:
        stop(server)
