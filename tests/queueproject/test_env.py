"""The environment helpers behind the security settings: good values parse, bad ones stop start-up."""

import pytest
from django.core.exceptions import ImproperlyConfigured

from queueproject.env import env_choice, env_proxy_ssl_header


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("X-Forwarded-Proto,https", ("HTTP_X_FORWARDED_PROTO", "https")),
        ("HTTP_X_FORWARDED_PROTO,https", ("HTTP_X_FORWARDED_PROTO", "https")),
        (" x-forwarded-ssl , on ", ("HTTP_X_FORWARDED_SSL", "on")),
        ("", None),
    ],
)
def test_a_proxy_ssl_header_is_read_as_django_wants_it(monkeypatch, raw, expected):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") == expected


def test_no_proxy_ssl_header_means_no_proxy_is_trusted(monkeypatch):
    monkeypatch.delenv("SECURE_PROXY_SSL_HEADER", raising=False)
    assert env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER") is None


@pytest.mark.parametrize(
    "raw", ["https", "X-Forwarded-Proto,", "X-Forwarded-Proto,https,http", "X Proto,https"]
)
def test_a_malformed_proxy_ssl_header_stops_start_up_naming_it(monkeypatch, raw):
    monkeypatch.setenv("SECURE_PROXY_SSL_HEADER", raw)
    with pytest.raises(ImproperlyConfigured, match="^SECURE_PROXY_SSL_HEADER=.*expected HEADER,VALUE"):
        env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")


def test_a_choice_takes_its_default_or_one_of_its_values(monkeypatch):
    monkeypatch.delenv("X_FRAME_OPTIONS", raising=False)
    assert env_choice("X_FRAME_OPTIONS", "DENY", ["DENY", "SAMEORIGIN"]) == "DENY"
    monkeypatch.setenv("X_FRAME_OPTIONS", "SAMEORIGIN")
    assert env_choice("X_FRAME_OPTIONS", "DENY", ["DENY", "SAMEORIGIN"]) == "SAMEORIGIN"
    monkeypatch.setenv("X_FRAME_OPTIONS", "ALLOW-FROM evil.example")
    with pytest.raises(
        ImproperlyConfigured, match="X_FRAME_OPTIONS='ALLOW-FROM evil.example': expected one of"
    ):
        env_choice("X_FRAME_OPTIONS", "DENY", ["DENY", "SAMEORIGIN"])
