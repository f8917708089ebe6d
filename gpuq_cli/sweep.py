"""`gpuq sweep`: a sweep (job array) as a whole: how many of its jobs are in each status, cancel all."""

import click

from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit_one, output_options

sweep_id = click.argument("sweep_id", metavar="ID", type=click.IntRange(min=1))


@cli.group()
def sweep():
    """A sweep (made by `gpuq submit --sweep`, `--sweep-file` or `--file`) as one.

    \b
    Examples:
      gpuq sweep show 4
      gpuq sweep cancel 4 --reason "wrong data"
      gpuq queue --mine   # its jobs are named NAME[0], NAME[1], ...
    """


@sweep.command()
@sweep_id
@output_options("all fields")
@pass_state
def show(state, sweep_id, fields, default, fmt):
    """A sweep: its size, how many jobs are in each status, whether all have ended.

    \b
    Examples:
      gpuq sweep show 4
      gpuq sweep show 4 -o counts.completed,finished --format csv
    """
    answer = state.api.get(f"/sweeps/{sweep_id}")
    emit_one(answer, fields, fmt)


@sweep.command()
@sweep_id
@click.option("--reason", default="", help="Why (kept in each job's history).")
@output_options("all fields")
@pass_state
def cancel(state, sweep_id, reason, fields, default, fmt):
    """Cancel every unfinished job of the sweep (running ones are stopped first).

    \b
    Examples:
      gpuq sweep cancel 4 --reason "wrong learning rates"
    """
    answer = state.api.post(f"/sweeps/{sweep_id}/cancel", {"reason": reason})
    emit_one(answer, fields, fmt)
