"""Manage users, teams and levels from a shell on the server (what the admin pages and the users API do):

  manage.py gpuq_user list [--team T] [--level L]
  manage.py gpuq_user create alice --level lead --team vision --unix-username alice --raw-commands
  manage.py gpuq_user update alice --level researcher --no-team --no-raw-commands --inactive
  manage.py gpuq_user levels
  manage.py gpuq_user level-limits researcher --default-time-limit 3600 --max-time-limit none
  manage.py gpuq_user teams
  manage.py gpuq_user team-create vision | team-rename vision cv | team-delete cv

A new user has no password unless --password-stdin reads one: give them a token with `gpuq_token`."""

import argparse
import sys

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import people
from accounts.models import Level, Team


def _user_options(parser, creating: bool) -> None:
    parser.add_argument("username")
    parser.add_argument("--level", choices=Level.values, help="admin, lead, researcher (default), viewer")
    team = parser.add_mutually_exclusive_group()
    team.add_argument("--team", help="the team's name (make it with team-create)")
    if not creating:
        team.add_argument("--no-team", action="store_true", help="take the user out of their team")
    parser.add_argument("--unix-username", help="their Unix account (jobs run as it with GPUQ_RUN_AS=user)")
    raw = parser.add_mutually_exclusive_group()
    raw.add_argument("--raw-commands", action="store_true", default=None, help="may submit raw commands")
    raw.add_argument("--no-raw-commands", dest="raw_commands", action="store_false")
    parser.add_argument("--email")
    parser.add_argument("--password-stdin", action="store_true", help="read a password from standard input")
    if not creating:
        active = parser.add_mutually_exclusive_group()
        active.add_argument("--active", dest="is_active", action="store_true", default=None)
        active.add_argument("--inactive", dest="is_active", action="store_false")


def _seconds_or_none(raw: str) -> int:
    """A time limit option: whole seconds, at least 1, or "none" (0 here: clear it)."""
    if raw.strip().lower() == "none":
        return 0
    if not (raw.isascii() and raw.isdigit()) or int(raw) < 1:
        raise argparse.ArgumentTypeError('whole seconds, at least 1, or "none"')
    return int(raw)


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        listing = actions.add_parser("list", help="users, by name")
        listing.add_argument("--team", default="")
        listing.add_argument("--level", choices=Level.values, default="")
        _user_options(actions.add_parser("create", help="make a user"), creating=True)
        _user_options(actions.add_parser("update", help="change a user"), creating=False)
        actions.add_parser("levels", help="the levels, their priority ceilings and time limits")
        limits = actions.add_parser("level-limits", help="set a level's default and longest time limit")
        limits.add_argument("level", choices=Level.values)
        for flag in ("--default-time-limit", "--max-time-limit"):
            limits.add_argument(flag, type=_seconds_or_none, help='seconds, or "none"; left out: kept')
        actions.add_parser("teams", help="teams and their member counts")
        actions.add_parser("team-create", help="make a team").add_argument("name")
        rename = actions.add_parser("team-rename", help="rename a team")
        rename.add_argument("name")
        rename.add_argument("new_name")
        actions.add_parser("team-delete", help="delete a team without members").add_argument("name")

    def handle(self, *args, action, **options):
        try:
            getattr(self, "do_" + action.replace("-", "_"))(**options)
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.message_dict.items())
            ) from None

    def _line(self, *cells) -> None:
        self.stdout.write("  ".join(str(c) for c in cells))

    def do_list(self, *, team, level, **_):
        users = list(people.user_list(team=team, level=level))
        raw = people.raw_command_holders(users)
        self._line("USERNAME", "LEVEL", "TEAM", "UNIX", "RAW", "ACTIVE")
        for user in users:
            profile = getattr(user, "profile", None)
            self._line(
                user.username,
                Level.ADMIN if user.is_superuser else profile.level if profile else Level.RESEARCHER,
                (profile.team.name if profile and profile.team else "-"),
                (profile.unix_username if profile and profile.unix_username else "-"),
                "yes" if user.pk in raw else "no",
                "yes" if user.is_active else "no",
            )

    def _changes(self, options, creating: bool) -> dict:
        changes = {}
        for option, name in (("level", "level"), ("unix_username", "unix_username"), ("email", "email")):
            if options.get(option) is not None:
                changes[name] = options[option]
        if options.get("team") is not None:
            changes["team"] = options["team"]
        if options.get("no_team"):
            changes["team"] = None
        if options.get("raw_commands") is not None:
            changes["can_submit_raw"] = options["raw_commands"]
        if not creating and options.get("is_active") is not None:
            changes["is_active"] = options["is_active"]
        if options.get("password_stdin"):
            changes["password"] = sys.stdin.readline().rstrip("\n")
        return changes

    def do_create(self, *, username, **options):
        user = people.user_create(by=None, username=username, **self._changes(options, creating=True))
        self.stdout.write(f"made user {user.username}")

    def do_update(self, *, username, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        people.user_update(by=None, user=user, **self._changes(options, creating=False))
        self.stdout.write(f"updated user {username}")

    def do_levels(self, **_):
        for row in people.levels():
            limits = (row["default_time_limit_seconds"], row["max_time_limit_seconds"])
            self._line(row["level"], row["priority_ceiling"], row["meaning"], *(v or "-" for v in limits))

    def do_level_limits(self, *, level, default_time_limit, max_time_limit, **_):
        changes = {}
        if default_time_limit is not None:
            changes["default_time_limit_seconds"] = default_time_limit or None
        if max_time_limit is not None:
            changes["max_time_limit_seconds"] = max_time_limit or None
        row = people.level_limits_update(by=None, level=level, **changes)
        self._line(level, row["default_time_limit_seconds"] or "-", row["max_time_limit_seconds"] or "-")

    def do_teams(self, **_):
        for team in people.team_list():
            self._line(team.name, team.member_count)

    def _team(self, name: str) -> Team:
        team = Team.objects.filter(name=name).first()
        if team is None:
            raise CommandError(f"no team named {name!r}")
        return team

    def do_team_create(self, *, name, **_):
        self.stdout.write(f"made team {people.team_create(by=None, name=name).name}")

    def do_team_rename(self, *, name, new_name, **_):
        people.team_rename(by=None, team=self._team(name), name=new_name)
        self.stdout.write(f"renamed team {name} to {new_name}")

    def do_team_delete(self, *, name, **_):
        people.team_delete(by=None, team=self._team(name))
        self.stdout.write(f"deleted team {name}")
