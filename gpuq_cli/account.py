"""`gpuq login`, `whoami` and `tokens`: who you are to the server, and your API tokens."""

import os
import sys

import click

from gpuq_cli import config
from gpuq_cli.client import Api, Failure
from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, output_options, say


@cli.command()
@click.option("--url", help="The server, e.g. http://gpu-server:8000 (asked if not given).")
@click.option(
    "--token",
    help="An API token (asked without echo if not given; a token on the command line is seen by `ps`).",
)
def login(url, token):
    """Check a server URL and API token, and keep them for the next commands.

    The token comes from the Tokens page (/tokens/), `gpuq tokens create`, or an admin's
    `manage.py gpuq_token USER`. They are checked with one request, then written to
    $GPUQ_CONFIG (default ~/.config/gpuq/config.json), readable by you only (mode 0600).

    \b
    Examples:
      gpuq login --url http://gpu-server:8000          # asks for the token
      echo "$TOKEN" | gpuq login --url http://gpu-server:8000
    """
    interactive = sys.stdin.isatty()
    url = url or (
        click.prompt("gpuq server URL", default=os.environ.get("GPUQ_URL"))
        if interactive
        else os.environ.get("GPUQ_URL")
    )
    if not url:
        raise click.UsageError("give --url (standard input is not a terminal to ask on)")
    url = config.normalize_url(url)
    if not token:
        # Piped in (`gpuq login --url … < token-file`): read it; getpass would ask the terminal instead.
        token = click.prompt("API token", hide_input=True) if interactive else sys.stdin.readline()
    token = token.strip()
    if not token:
        raise click.UsageError("the token is empty")
    # One try: a mistyped URL is said at once, not after half a minute of retries meant for a server restart.
    me = Api(config.Config(url=url, token=token, source="login"), retries=0).get("/me")
    path = config.save(url, token)
    say(f"logged in to {url} as {me['username']} ({me['level']}); saved in {path} (mode 0600)")


@cli.command()
@output_options("username,level,team,is_admin,can_submit")
@pass_state
def whoami(state, fields, default, fmt):
    """Who the token belongs to: username, level, team.

    \b
    Example:
      gpuq whoami --format json
    """
    emit([state.api.get("/me")], fields, default, fmt)


@cli.group(invoke_without_command=True)
@click.pass_context
def tokens(ctx):
    """List, create and revoke your API tokens (`gpuq tokens` alone lists them).

    \b
    Examples:
      gpuq tokens
      gpuq tokens create --name laptop --days 30
      gpuq tokens revoke 7
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(tokens_list)


@tokens.command("list")
@output_options("id,name,hint,created_at,expires_at,last_used_at,expired")
@pass_state
def tokens_list(state, fields, default, fmt):
    """Your tokens (never their keys).

    \b
    Example:
      gpuq tokens list --format csv
    """
    emit(state.api.get("/tokens"), fields, default, fmt)


@tokens.command("create")
@click.option("--name", default="", help="What it is for, e.g. laptop.")
@click.option("--days", type=click.IntRange(min=1), help="Lifetime in days (default: the server's maximum).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@pass_state
def tokens_create(state, name, days, fmt):
    """Make a token; its key is printed this once (on stdout, alone, in text format).

    \b
    Example:
      gpuq tokens create --name ci --days 7 > ci-token && chmod 600 ci-token
    """
    made = state.api.post("/tokens", {"name": name, "days": days})
    if fmt == "json":
        import json

        click.echo(json.dumps(made, indent=2))
        return
    say(f"token {made['id']} ({made['name'] or 'no name'}) expires {made['expires_at']}; shown only now:")
    click.echo(made["key"])


@tokens.command("revoke")
@click.argument("token_ids", metavar="ID...", nargs=-1, required=True, type=int)
@pass_state
def tokens_revoke(state, token_ids):
    """Revoke tokens of yours by id (see `gpuq tokens`).

    \b
    Example:
      gpuq tokens revoke 7 8
    """
    failed = None
    for token_id in token_ids:
        try:
            state.api.delete(f"/tokens/{token_id}")
            say(f"token {token_id} revoked")
        except Failure as error:
            error.show()
            failed = error
    if failed:
        raise click.exceptions.Exit(failed.exit_code)
