"""`gpuq users` and `gpuq teams`: admins manage people (GET/POST/PATCH /api/v1/users, /teams)."""

import click

from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, output_options, say

LEVELS = click.Choice(["admin", "lead", "researcher", "viewer"])


def _user_options(command):
    for option in reversed(
        [
            click.option("--level", type=LEVELS, help="admin, lead, researcher or viewer."),
            click.option("--team", help="The team's name (make it with `gpuq teams create`)."),
            click.option(
                "--unix-username", help="Their Unix account (jobs run as it with GPUQ_RUN_AS=user)."
            ),
            click.option(
                "--raw-commands/--no-raw-commands", default=None, help="May (not) submit raw commands."
            ),
            click.option("--email"),
        ]
    ):
        command = option(command)
    return command


def _changes(level, team, unix_username, raw_commands, email) -> dict:
    body = {"level": level, "team": team, "unix_username": unix_username, "email": email}
    body = {k: v for k, v in body.items() if v is not None}
    if raw_commands is not None:
        body["can_submit_raw"] = raw_commands
    return body


@cli.group(invoke_without_command=True)
@click.pass_context
def users(ctx):
    """Admins: list, create and change users (`gpuq users` alone lists them).

    \b
    Examples:
      gpuq users
      gpuq users create lena --level lead --team vision --unix-username lena
      gpuq users set alice --level viewer --no-raw-commands
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(users_list)


@users.command("list")
@click.option("--team", help="Only this team's members.")
@click.option("--level", type=LEVELS, help="Only users of this level.")
@output_options("username,level,team,unix_username,can_submit_raw,is_active")
@pass_state
def users_list(state, team, level, fields, default, fmt):
    """Every user, by name.

    \b
    Example:
      gpuq users list --team vision --format csv
    """
    emit(state.api.all("/users", team=team, level=level), fields, default, fmt)


@users.command("create")
@click.argument("username")
@_user_options
@pass_state
def users_create(state, username, **options):
    """Make a user (researcher without a team unless told). They have no password: give them a token
    (`manage.py gpuq_token USER` on the server).

    \b
    Example:
      gpuq users create lena --level lead --team vision
    """
    made = state.api.post("/users", {"username": username, **_changes(**options)})
    say(f"made user {made['username']} ({made['level']}, team {made['team'] or '-'})")


@users.command("set")
@click.argument("username")
@_user_options
@click.option("--no-team", is_flag=True, help="Take them out of their team.")
@click.option(
    "--active/--inactive", default=None, help="An inactive user can no longer log in or use tokens."
)
@pass_state
def users_set(state, username, no_team, active, **options):
    """Change a user's level, team, Unix account, raw-command permission or active flag.

    \b
    Example:
      gpuq users set alice --level lead --team vision
    """
    body = _changes(**options)
    if no_team:
        body["team"] = None
    if active is not None:
        body["is_active"] = active
    if not body:
        raise click.UsageError("nothing to change: give at least one option")
    done = state.api.request("PATCH", f"/users/{username}", json=body)
    say(f"updated user {done['username']} ({done['level']}, team {done['team'] or '-'})")


@cli.group(invoke_without_command=True)
@click.pass_context
def teams(ctx):
    """Admins: list, create, rename and delete teams (`gpuq teams` alone lists them).

    \b
    Examples:
      gpuq teams
      gpuq teams create vision
      gpuq teams rename vision cv
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(teams_list)


@teams.command("list")
@output_options("name,member_count")
@pass_state
def teams_list(state, fields, default, fmt):
    """The teams and how many members each has.

    \b
    Example:
      gpuq teams list --format json
    """
    emit(state.api.all("/teams"), fields, default, fmt)


@teams.command("create")
@click.argument("name")
@pass_state
def teams_create(state, name):
    """Make a team.

    \b
    Example:
      gpuq teams create vision
    """
    say(f"made team {state.api.post('/teams', {'name': name})['name']}")


@teams.command("rename")
@click.argument("name")
@click.argument("new_name")
@pass_state
def teams_rename(state, name, new_name):
    """Rename a team.

    \b
    Example:
      gpuq teams rename vision cv
    """
    state.api.request("PATCH", f"/teams/{name}", json={"name": new_name})
    say(f"renamed team {name} to {new_name}")


@teams.command("delete")
@click.argument("name")
@pass_state
def teams_delete(state, name):
    """Delete a team that has no members left.

    \b
    Example:
      gpuq teams delete cv
    """
    state.api.delete(f"/teams/{name}")
    say(f"deleted team {name}")
