"""Users, teams and levels managed by admins without the Django admin: the API and `gpuq_user`."""

from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import Level, Team
from accounts.permissions import can_submit_raw, level_of, team_of
from tests.conftest import api_for

User = get_user_model()


def fresh(username: str):
    return User.objects.get(username=username)  # a new object: no cached level, team or permissions


def test_an_admin_makes_a_user_with_level_team_unix_account_and_raw_commands(root, team, node):
    client = api_for(root)
    response = client.post(
        "/api/v1/users",
        {
            "username": "lena",
            "level": "lead",
            "team": "vision",
            "unix_username": "lena",
            "can_submit_raw": True,
            "password": "a long enough password",
        },
        format="json",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["level"] == "lead" and response.json()["can_submit_raw"] is True
    lena = fresh("lena")
    assert (level_of(lena), team_of(lena), lena.profile.unix_username) == ("lead", team, "lena")
    assert can_submit_raw(lena) and lena.check_password("a long enough password")
    # The new user works at once: a raw command of theirs is accepted.
    submitted = api_for(lena).post("/api/v1/jobs", {"argv": ["/bin/true"]}, format="json")
    assert submitted.status_code == 201, submitted.json()


def test_a_user_made_without_a_password_cannot_log_in_with_one(root):
    api_for(root).post("/api/v1/users", {"username": "tokenonly"}, format="json")
    user = fresh("tokenonly")
    assert not user.has_usable_password() and level_of(user) == Level.RESEARCHER and team_of(user) is None


def test_an_admin_changes_a_users_level_team_and_permissions(root, alice, node):
    nlp = Team.objects.create(name="nlp")
    client = api_for(root)
    response = client.patch(
        "/api/v1/users/alice",
        {"level": "viewer", "team": "nlp", "unix_username": "asmith", "is_active": True},
        format="json",
    )
    assert response.status_code == 200, response.json()
    alice = fresh("alice")
    assert (level_of(alice), team_of(alice), alice.profile.unix_username) == ("viewer", nlp, "asmith")
    client.patch("/api/v1/users/alice", {"level": "researcher", "can_submit_raw": True}, format="json")
    assert can_submit_raw(fresh("alice"))
    client.patch("/api/v1/users/alice", {"team": None, "can_submit_raw": False}, format="json")
    assert team_of(fresh("alice")) is None and not can_submit_raw(fresh("alice"))


def test_a_deactivated_user_is_refused(root, alice):
    alices = api_for(alice)
    assert alices.get("/api/v1/me").status_code == 200
    api_for(root).patch("/api/v1/users/alice", {"is_active": False}, format="json")
    assert alices.get("/api/v1/me").status_code == 401


def test_the_user_list_is_paged_and_filtered(root, alice, bob):
    client = api_for(root)
    page = client.get("/api/v1/users?limit=2").json()
    assert page["count"] == 3 and [u["username"] for u in page["results"]] == ["alice", "bob"]
    assert [u["username"] for u in client.get("/api/v1/users?team=vision").json()["results"]] == ["alice"]
    admins = client.get("/api/v1/users?level=admin").json()["results"]
    assert [(u["username"], u["can_submit_raw"]) for u in admins] == [("root", True)]
    assert client.get("/api/v1/users?level=boss").status_code == 400


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "x", "levle": "lead"}, "levle"),  # a typo is refused, not ignored
        ({"username": "x", "level": "boss"}, "level"),
        ({"username": "x", "unix_username": "Root Account"}, "unix_username"),
        ({"username": "x", "can_submit_raw": "yes"}, "can_submit_raw"),
        ({"username": 5}, "username"),
        ({"username": "bad name!"}, "username"),
        ({"username": "x", "password": "short"}, "password"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(root, alice, body, field):
    response = api_for(root).post("/api/v1/users", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()


def test_a_name_taken_is_a_409_naming_it(root, alice):
    response = api_for(root).post("/api/v1/users", {"username": "alice"}, format="json")
    assert response.status_code == 409 and "username" in response.json()


def test_a_team_that_does_not_exist_is_a_422_naming_it(root):
    response = api_for(root).post("/api/v1/users", {"username": "x", "team": "nope"}, format="json")
    assert response.status_code == 422 and "team" in response.json()


def test_an_admin_cannot_take_away_their_own_admin_rights(db):
    from tests.conftest import make_user

    admin = make_user("ada", level=Level.ADMIN)
    client = api_for(admin)
    assert client.patch("/api/v1/users/ada", {"level": "lead"}, format="json").status_code == 409
    assert client.patch("/api/v1/users/ada", {"is_active": False}, format="json").status_code == 409
    assert level_of(fresh("ada")) == Level.ADMIN


def test_teams_are_made_renamed_listed_and_deleted_when_empty(root, alice):
    client = api_for(root)
    assert client.post("/api/v1/teams", {"name": "nlp"}, format="json").status_code == 201
    assert client.post("/api/v1/teams", {"name": "nlp"}, format="json").status_code == 409  # taken
    listed = client.get("/api/v1/teams").json()["results"]
    assert listed == [{"name": "nlp", "member_count": 0}, {"name": "vision", "member_count": 1}]
    assert client.patch("/api/v1/teams/nlp", {"name": "language"}, format="json").json()["name"] == "language"
    refused = client.delete("/api/v1/teams/vision")
    assert refused.status_code == 409 and "member" in refused.json()["name"][0]
    assert client.delete("/api/v1/teams/language").status_code == 204
    assert list(Team.objects.values_list("name", flat=True)) == ["vision"]


def test_levels_list_their_priority_ceilings(root):
    levels = api_for(root).get("/api/v1/levels").json()
    assert [(r["level"], r["priority_ceiling"]) for r in levels] == [
        ("admin", 30),
        ("lead", 20),
        ("researcher", 10),
        ("viewer", 0),
    ]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/users"),
        ("post", "/api/v1/users"),
        ("patch", "/api/v1/users/alice"),
        ("get", "/api/v1/teams"),
        ("post", "/api/v1/teams"),
        ("delete", "/api/v1/teams/vision"),
        ("get", "/api/v1/levels"),
    ],
)
def test_only_admins_manage_people(alice, method, path):
    lead_body = {"username": "sneaky", "level": "admin", "name": "x"}
    response = getattr(api_for(alice), method)(path, lead_body, format="json")
    assert response.status_code == 403
    assert level_of(fresh("alice")) == Level.RESEARCHER and not User.objects.filter(username="sneaky")


def run(*args, stdin: str = "") -> str:
    out = StringIO()
    if stdin:
        import sys
        from unittest import mock

        with mock.patch.object(sys, "stdin", StringIO(stdin)):
            call_command("gpuq_user", *args, stdout=out)
    else:
        call_command("gpuq_user", *args, stdout=out)
    return out.getvalue()


def test_the_command_makes_teams_and_users_and_changes_them(db):
    run("team-create", "vision")
    run("create", "lena", "--level", "lead", "--team", "vision", "--unix-username", "lena", "--raw-commands")
    lena = fresh("lena")
    assert (level_of(lena), team_of(lena).name, lena.profile.unix_username) == ("lead", "vision", "lena")
    assert can_submit_raw(lena) and not lena.has_usable_password()
    run("update", "lena", "--level", "researcher", "--no-team", "--no-raw-commands", "--password-stdin",
        stdin="a long enough password\n")  # fmt: skip
    lena = fresh("lena")
    assert (level_of(lena), team_of(lena), can_submit_raw(lena)) == ("researcher", None, False)
    assert lena.check_password("a long enough password")
    run("update", "lena", "--inactive")
    assert not fresh("lena").is_active
    listing = run("list")
    assert "lena" in listing and "researcher" in listing
    assert "vision  0" in run("teams")
    run("team-rename", "vision", "cv")
    run("team-delete", "cv")
    assert not Team.objects.exists()
    assert "lead  20" in run("levels")
    assert (
        run("level-limits", "lead", "--default-time-limit", "600", "--max-time-limit", "3600")
        == "lead  600  3600\n"
    )
    assert run("level-limits", "lead", "--default-time-limit", "none") == "lead  -  3600\n"
    assert run("levels").splitlines()[1].endswith("  -  3600")


def test_the_command_says_what_is_wrong(db):
    with pytest.raises(CommandError, match="team"):
        run("create", "lena", "--team", "nope")
    with pytest.raises(CommandError, match="no user"):
        run("update", "ghost", "--level", "lead")


def test_email_addresses_are_checked_and_declared_as_email(root):
    client = api_for(root)
    refused = client.post("/api/v1/users", {"username": "mo", "email": "not an address"}, format="json")
    assert refused.status_code == 400 and "email" in refused.json()
    made = client.post("/api/v1/users", {"username": "mo", "email": "mo@example.org"}, format="json")
    assert made.status_code == 201 and made.json()["email"] == "mo@example.org"
    cleared = client.patch("/api/v1/users/mo", {"email": ""}, format="json")
    assert cleared.status_code == 200 and cleared.json()["email"] == ""
    assert client.patch("/api/v1/users/mo", {"email": "x@"}, format="json").status_code == 400
    schemas = client.get("/api/v1/schema/?format=json").json()["components"]["schemas"]
    for name in ("UserOut", "UserCreateInRequest", "PatchedUserUpdateInRequest"):
        declared = schemas[name]["properties"]["email"]["oneOf"]
        assert [(d.get("format"), d.get("maxLength")) for d in declared] == [("email", None), (None, 0)], name
