"""The `gpuq` command group: global options, the shared API client, and the command modules."""

import click

from gpuq_cli import __version__, config
from gpuq_cli.client import NOT_LOGGED_IN, Api, Failure

EPILOG = """\b
Exit codes: 0 ok; 1 the server said no (its message, naming the field, on stderr); 2 bad usage;
3 the server cannot be reached or failed (5xx); 4 not logged in or token refused (401);
`submit --wait` exits with the job's exit code (5 if it ended without one).
Config: GPUQ_URL and GPUQ_TOKEN, else $GPUQ_CONFIG (default ~/.config/gpuq/config.json, from `gpuq login`)."""


class State:
    """What commands share: the API client, made on first use (so `--help` needs no login)."""

    def __init__(self):
        self._api = None

    @property
    def api(self) -> Api:
        if self._api is None:
            try:
                self._api = Api(config.load())
            except ValueError as error:
                raise Failure(str(error), NOT_LOGGED_IN) from None
        return self._api


pass_state = click.make_pass_decorator(State, ensure=True)


class Group(click.Group):
    """Lists commands in the order they were added (the order of the README), with aliases."""

    aliases = {"ls": "queue"}
    order = "login whoami submit sweep queue show logs cancel pause resume priority approve reject".split()

    def list_commands(self, ctx):
        return sorted(self.commands, key=lambda name: (self.order + [name]).index(name))

    def get_command(self, ctx, name):
        return super().get_command(ctx, self.aliases.get(name, name))


@click.group(
    cls=Group,
    epilog=EPILOG,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="gpuq")
def cli():
    """gpuq: submit and follow jobs on a gpuq server, from any machine that reaches it.

    \b
    Examples:
      gpuq login --url http://gpu-server:8000
      gpuq submit hello-gpu -p message=hi --wait
      gpuq submit --gpus 2 --time-limit 2h -- python3 train.py --lr 0.1
      gpuq queue --mine -o id,status,progress.fraction
    """


def main() -> None:
    from gpuq_cli import account, cluster, jobs, metrics, people, simulate, submit, sweep  # noqa: F401  (they add their commands to `cli`)

    cli(prog_name="gpuq")
