"""API tokens: stored hashed, checked on every request, and they expire."""

from datetime import timedelta

from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken


def get_jobs(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client.get("/api/v1/jobs")


def test_only_a_hash_of_the_key_is_stored(alice):
    token, key = ApiToken.issue(user=alice)
    assert key.startswith("gpuq_")
    assert key not in token.digest and token.digest != key
    assert ApiToken.find(key) == token


def test_a_valid_token_authenticates(alice):
    _, key = ApiToken.issue(user=alice)
    assert get_jobs(key).status_code == 200


def test_bearer_works_too(alice):
    _, key = ApiToken.issue(user=alice)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    assert client.get("/api/v1/jobs").status_code == 200


def test_an_expired_token_is_refused(alice):
    _, key = ApiToken.issue(user=alice, expires_at=timezone.now() - timedelta(seconds=1))
    response = get_jobs(key)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def test_a_wrong_token_is_refused(alice):
    ApiToken.issue(user=alice)
    assert get_jobs("gpuq_not-a-real-key").status_code == 401


def test_no_credentials_is_refused(db):
    assert APIClient().get("/api/v1/jobs").status_code == 401


def test_an_inactive_users_token_is_refused(alice):
    _, key = ApiToken.issue(user=alice)
    alice.is_active = False
    alice.save()
    assert get_jobs(key).status_code == 401
