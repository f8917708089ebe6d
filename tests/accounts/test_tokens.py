"""API tokens: stored hashed, checked on every request, and they expire."""

import re
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Level
from accounts.permissions import level_of, team_of


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


# --- every token expires (GPUQ_TOKEN_MAX_DAYS) ---


def test_a_token_issued_without_an_expiry_gets_the_maximum(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 30
    token, _ = ApiToken.issue(user=alice)
    assert token.expires_at - token.created_at == timedelta(days=30)


def test_a_token_cannot_be_issued_beyond_the_maximum(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 30
    with pytest.raises(ValidationError) as error:
        ApiToken.issue(user=alice, expires_at=timezone.now() + timedelta(days=31))
    assert "expires_at" in error.value.message_dict


def test_gpuq_token_refuses_days_out_of_range(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 90
    for days in ("0", "-3", "91"):
        with pytest.raises(CommandError, match="--days"):
            call_command("gpuq_token", "alice", "--days", days, stdout=StringIO())
    assert not ApiToken.objects.filter(user=alice).exists()


def test_gpuq_token_without_days_expires_at_the_maximum(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 90
    out = StringIO()
    call_command("gpuq_token", "alice", stdout=out)
    token = ApiToken.find(out.getvalue().strip())
    assert token.user == alice
    assert token.expires_at - token.created_at == timedelta(days=90)
    call_command("gpuq_token", "alice", "--days", "7", stdout=(out := StringIO()))
    token = ApiToken.find(out.getvalue().strip())
    assert token.expires_at - token.created_at == timedelta(days=7)


def test_gpuq_bootstrap_issues_a_new_admin_token_when_the_stored_one_expired(db, settings):
    call_command("gpuq_bootstrap", stdout=StringIO())
    first = (settings.DATA_DIR / "admin-token").read_text().strip()
    call_command("gpuq_bootstrap", stdout=StringIO())
    assert (settings.DATA_DIR / "admin-token").read_text().strip() == first  # still valid: kept
    ApiToken.objects.filter(pk=ApiToken.find(first).pk).update(expires_at=timezone.now())
    assert get_jobs(first).status_code == 401
    call_command("gpuq_bootstrap", stdout=StringIO())
    second = (settings.DATA_DIR / "admin-token").read_text().strip()
    assert second != first
    assert get_jobs(second).status_code == 200


@pytest.mark.django_db(transaction=True)
def test_the_migration_gives_tokens_without_expiry_one(settings):
    """Tokens made before expiry was required get created_at + the maximum, or now + the maximum when
    that is already past; then the column is required."""
    executor = MigrationExecutor(connection)
    name = next(n for app, n in executor.loader.disk_migrations if app == "accounts" and "token_expiry" in n)
    before = executor.loader.get_migration("accounts", name).dependencies
    executor.migrate([dep for dep in before if dep[0] == "accounts"])
    old = executor.loader.project_state([dep for dep in before if dep[0] == "accounts"]).apps
    user = old.get_model("auth", "User").objects.create(username="olduser")
    Token = old.get_model("accounts", "ApiToken")
    now = timezone.now()
    recent = Token.objects.create(
        user_id=user.pk, digest="a" * 64, hint="gpuq_a", created_at=now, expires_at=None
    )
    ancient = Token.objects.create(
        user_id=user.pk, digest="b" * 64, hint="gpuq_b", created_at=now - timedelta(days=400), expires_at=None
    )
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    lifetime = timedelta(days=settings.GPUQ_TOKEN_MAX_DAYS)
    assert ApiToken.objects.get(pk=recent.pk).expires_at == recent.created_at + lifetime
    assert ApiToken.objects.get(pk=ancient.pk).expires_at >= now + lifetime
    with pytest.raises(IntegrityError):
        with transaction.atomic():
            ApiToken.objects.filter(pk=recent.pk).update(expires_at=None)


# --- users list, make and revoke their own tokens: API ---


def test_users_list_their_own_tokens_without_keys(alice, bob):
    mine, key = ApiToken.issue(user=alice, name="laptop")
    ApiToken.issue(user=bob, name="bobs")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = client.get("/api/v1/tokens").json()
    assert [t["name"] for t in body] == ["laptop"]
    assert set(body[0]) == {"id", "name", "hint", "created_at", "expires_at", "last_used_at", "expired"}
    assert key not in str(body) and mine.digest not in str(body)


def test_a_user_makes_a_token_and_sees_its_key_once(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 90
    client = APIClient()
    client.force_authenticate(alice)
    response = client.post("/api/v1/tokens", {"name": "ci", "days": 10}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert get_jobs(body["key"]).status_code == 200
    token = ApiToken.objects.get(pk=body["id"])
    assert (token.name, token.user, token.expires_at - token.created_at) == ("ci", alice, timedelta(days=10))
    assert "key" not in client.get("/api/v1/tokens").json()[0]


def test_days_out_of_range_is_a_400_naming_days(alice, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 90
    client = APIClient()
    client.force_authenticate(alice)
    for days in (0, 91, "many", 1.5):
        response = client.post("/api/v1/tokens", {"days": days}, format="json")
        assert response.status_code == 400 and "days" in response.json(), (days, response.json())


def test_a_token_made_with_a_token_does_not_outlive_it(alice):
    parent, key = ApiToken.issue(user=alice, expires_at=timezone.now() + timedelta(days=2))
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    body = client.post("/api/v1/tokens", {"name": "child"}, format="json").json()
    assert ApiToken.objects.get(pk=body["id"]).expires_at == parent.expires_at


def test_a_user_revokes_their_token_and_it_stops_working(alice):
    _, key = ApiToken.issue(user=alice)
    doomed, doomed_key = ApiToken.issue(user=alice, name="old")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    assert client.delete(f"/api/v1/tokens/{doomed.pk}").status_code == 204
    assert get_jobs(doomed_key).status_code == 401
    assert client.delete(f"/api/v1/tokens/{doomed.pk}").status_code == 404


def test_another_users_token_is_a_404_even_for_an_admin(alice, root):
    theirs, their_key = ApiToken.issue(user=alice)
    admin = APIClient()
    admin.force_authenticate(root)
    assert admin.delete(f"/api/v1/tokens/{theirs.pk}").status_code == 404
    assert get_jobs(their_key).status_code == 200


def test_the_tokens_api_needs_a_login(db):
    assert APIClient().get("/api/v1/tokens").status_code == 401
    assert APIClient().post("/api/v1/tokens", {}, format="json").status_code == 401


# --- the tokens page ---


def test_the_tokens_page_lists_makes_and_revokes(alice, bob):
    ApiToken.issue(user=bob, name="bobs-token")
    page = Client()
    page.force_login(alice)
    made = page.post("/tokens/", {"name": "notebook", "days": "5"})
    assert made.status_code == 200
    key = re.search(r'id="new-token-key">([^<]+)<', made.content.decode()).group(1)
    assert get_jobs(key).status_code == 200
    listing = page.get("/tokens/").content.decode()
    assert "notebook" in listing and "bobs-token" not in listing and key not in listing
    token = ApiToken.find(key)
    assert page.post(f"/tokens/{token.pk}/revoke").status_code == 302
    assert get_jobs(key).status_code == 401


def test_the_tokens_page_refuses_another_users_token_and_bad_days(alice, bob, settings):
    settings.GPUQ_TOKEN_MAX_DAYS = 90
    theirs, their_key = ApiToken.issue(user=bob)
    page = Client()
    page.force_login(alice)
    page.post(f"/tokens/{theirs.pk}/revoke")
    assert get_jobs(their_key).status_code == 200
    response = page.post("/tokens/", {"name": "x", "days": "0"})
    assert response.status_code == 400 and "days" in response.content.decode()
    assert not ApiToken.objects.filter(user=alice).exists()


def test_revoking_on_the_page_needs_csrf(alice):
    token, key = ApiToken.issue(user=alice)
    page = Client(enforce_csrf_checks=True)
    page.force_login(alice)
    assert page.post(f"/tokens/{token.pk}/revoke").status_code == 403
    assert get_jobs(key).status_code == 200


def test_the_header_links_to_the_tokens_page(alice):
    page = Client()
    page.force_login(alice)
    assert 'href="/tokens/"' in page.get("/me/").content.decode()


def test_a_tokens_user_comes_with_their_level_and_team(alice, team):
    """Every request checks the user's level: the token's lookup brings it, no query of its own."""
    from accounts.permissions import forget

    _, key = ApiToken.issue(user=alice)
    user = ApiToken.find(key).user
    with CaptureQueriesContext(connection) as queries:
        assert (level_of(user), team_of(user)) == (Level.RESEARCHER, team)
    assert len(queries) == 0
    alice.profile.level = Level.LEAD
    alice.profile.save()
    forget(user)  # what the token brought is as old as what was kept: both are read again
    assert level_of(user) == Level.LEAD


def test_a_token_of_a_user_without_a_profile_is_a_researcher_without_a_team(bob):
    bob.profile.delete() if hasattr(bob, "profile") else None
    _, key = ApiToken.issue(user=bob)
    user = ApiToken.find(key).user
    with CaptureQueriesContext(connection) as queries:
        assert (level_of(user), team_of(user)) == (Level.RESEARCHER, None)
    assert len(queries) == 0
