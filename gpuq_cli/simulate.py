"""`gpuq simulate`: what-if replays of history or a trace under proposed policies (admins only)."""

import json
import time
from pathlib import Path

import click

from gpuq_cli.client import REFUSED, USAGE, Failure
from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, output_options, say

TABLE = "set,utilization,mean_wait_min,p95_wait_min,max_wait_min,jain,out_of_order,gpus_1,gpus_2-4,gpus_5-8,gpus_>8"
POLL_SECONDS = 1.0


@cli.command()
@click.option("--days", type=click.IntRange(min=1), help="Replay the jobs that ran in the last N days.")
@click.option(
    "--trace",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Or replay a trace CSV: submit_time,gpus,runtime,user[,time_limit,priority,team].",
)
@click.option(
    "--policies",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help='Proposed policy sets, a JSON file: {"name": {"backfill": {}, "ordering": {...}}}.',
)
@click.option("--nodes", help="GPUs per node to replay on, e.g. 8,8,8 (default: the registered nodes).")
@click.option(
    "--no-wait", is_flag=True, help="Print the simulation's id and return; read it later with --show."
)
@click.option(
    "--show", "show_id", type=click.IntRange(min=1), help="Print (or wait for) simulation N's table."
)
@output_options(TABLE)
@pass_state
def simulate(state, days, trace, policies, nodes, no_wait, show_id, fields, default, fmt):
    """Compare policy sets on history or a trace: utilisation, waits (minutes) overall and per GPU-count
    class as mean/p95/max, Jain's fairness index, starts out of order. Each set is compared with strict
    FIFO, plain backfill and the present policies. Admins only.

    \b
    Examples:
      gpuq simulate --days 14 --policies proposals.json
      gpuq simulate --trace benchmarks/traces/synthetic-3000.csv --nodes 8,8,8,8 --format json
    """
    if show_id is None:
        body = _body(days, trace, policies, nodes)
        sim = state.api.post("/simulations", body)
        if no_wait:
            click.echo(sim["id"])
            return
    else:
        sim = state.api.get(f"/simulations/{show_id}")
    while sim["status"] in ("queued", "running"):
        say(f"simulation {sim['id']}: {sim['status']} {sim['progress'] * 100:.0f}%")
        time.sleep(POLL_SECONDS)  # a person waits for the table; the server has no push for this
        sim = state.api.get(f"/simulations/{sim['id']}")
    if sim["status"] == "failed":
        raise Failure(f"simulation {sim['id']} failed: {sim['error']}", REFUSED)
    result = sim["result"]
    say(f"simulation {sim['id']}: {result['jobs']} jobs on {len(result['nodes'])} node(s), {sim['source']}")
    emit(result["table"], fields, default, fmt)


def _body(days, trace, policies, nodes) -> dict:
    if (days is None) == (trace is None):
        raise Failure("give --days N or --trace FILE (one of them)", USAGE)
    body: dict = {"days": days} if days is not None else {"trace": _read(trace), "trace_name": trace.name}
    if policies is not None:
        try:
            body["policies"] = json.loads(_read(policies))
        except json.JSONDecodeError as error:
            raise Failure(f"--policies: {policies} is not JSON: {error}", USAGE) from None
    if nodes:
        try:
            body["nodes"] = [int(n) for n in nodes.split(",")]
        except ValueError:
            raise Failure("--nodes: GPU counts separated by commas, e.g. 8,8", USAGE) from None
    return body


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise Failure(f"{path}: {error}", USAGE) from None
