"""Login lockout: wrong passwords for one username, or from one address, lead to a 429 with Retry-After
that refuses even the right password until the window passes."""

import pytest
from django.test import Client

import accounts.throttling


@pytest.fixture
def clock(monkeypatch):
    """FailureWindow's clock, frozen; move it with clock.advance(seconds)."""

    class Clock:
        now = accounts.throttling.clock()

        def advance(self, seconds):
            self.now += seconds

    frozen = Clock()
    monkeypatch.setattr(accounts.throttling, "clock", lambda: frozen.now)
    return frozen


def log_in(path, username, password, address="127.0.0.1"):
    return Client(REMOTE_ADDR=address).post(path, {"username": username, "password": password})


def logged_in(response) -> bool:
    return response.status_code == 302 and "_auth_user_id" in response.client.session


def test_wrong_admin_passwords_meet_a_lockout_long_before_200(root, clock):
    # Production defaults (GPUQ_LOGIN_MAX_FAILURES = 10, GPUQ_LOGIN_LOCKOUT_SECONDS = 900).
    for attempt in range(1, 201):
        response = log_in("/admin/login/", "root", f"guess-{attempt}", address="203.0.113.5")
        if response.status_code == 429:
            break
        assert response.status_code == 200  # the form again, with its error
    assert attempt == 11
    assert 1 <= int(response["Retry-After"]) <= 900
    assert "Too many failed logins" in response.content.decode()


def test_the_right_password_is_refused_during_the_lockout_and_accepted_after(root, clock, settings):
    settings.GPUQ_LOGIN_MAX_FAILURES = 3
    settings.GPUQ_LOGIN_LOCKOUT_SECONDS = 60
    for _ in range(3):
        assert log_in("/admin/login/", "root", "wrong").status_code == 200
    refused = log_in("/admin/login/", "root", "pw-root")
    assert refused.status_code == 429 and not logged_in(refused)
    assert int(refused["Retry-After"]) == 60
    clock.advance(30)
    assert log_in("/admin/login/", "root", "pw-root").status_code == 429
    clock.advance(31)
    assert logged_in(log_in("/admin/login/", "root", "pw-root"))


def test_a_username_is_locked_from_every_address(alice, clock, settings):
    settings.GPUQ_LOGIN_MAX_FAILURES = 3
    for n in range(3):
        assert log_in("/accounts/login/", "alice", "wrong", address=f"198.51.100.{n}").status_code == 200
    assert log_in("/accounts/login/", "Alice", "pw-alice", address="192.0.2.1").status_code == 429


def test_an_address_is_locked_for_every_username(alice, bob, clock, settings):
    settings.GPUQ_LOGIN_MAX_FAILURES = 3
    for name in ("carol", "dave", "erin"):
        assert log_in("/accounts/login/", name, "wrong", address="203.0.113.5").status_code == 200
    assert log_in("/accounts/login/", "bob", "pw-bob", address="203.0.113.5").status_code == 429
    assert logged_in(log_in("/accounts/login/", "bob", "pw-bob", address="198.51.100.1"))


def test_a_successful_login_clears_its_usernames_failures(alice, clock, settings):
    settings.GPUQ_LOGIN_MAX_FAILURES = 3
    for _ in range(2):
        log_in("/accounts/login/", "alice", "wrong", address="198.51.100.1")
    assert logged_in(log_in("/accounts/login/", "alice", "pw-alice", address="198.51.100.2"))
    for _ in range(2):
        log_in("/accounts/login/", "alice", "wrong", address="198.51.100.3")
    assert logged_in(log_in("/accounts/login/", "alice", "pw-alice", address="198.51.100.4"))
