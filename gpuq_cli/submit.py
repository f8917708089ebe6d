"""`gpuq submit`: a template with parameters, or a command after `--`, with every field of
POST /api/v1/jobs as a flag; `--dry-run` asks where it would go, `--wait` follows it to its end."""

import json
import uuid

import click

from gpuq_cli import parse
from gpuq_cli.client import NO_EXIT_CODE
from gpuq_cli.follow import follow, interrupted
from gpuq_cli.main import State, cli
from gpuq_cli.output import say


class SubmitCommand(click.Command):
    """Everything after the first `--` is the job's command, untouched (not options of gpuq)."""

    def collect_usage_pieces(self, ctx):
        return [*super().collect_usage_pieces(ctx), "[-- COMMAND [ARG]...]"]

    def parse_args(self, ctx, args):
        if "--" in args:
            cut = args.index("--")
            ctx.meta["gpuq_argv"] = args[cut + 1 :]
            args = args[:cut]
        return super().parse_args(ctx, args)


@cli.command(cls=SubmitCommand)
@click.argument("template", required=False)
@click.option(
    "-p",
    "--param",
    "params",
    multiple=True,
    metavar="KEY=VALUE",
    help="A template parameter; VALUE is JSON if it parses (3, true, [1,2]), else text.",
)
@click.option("--gpus", "gpu_count", type=int, help="GPUs it needs (on one node, or in all with --nodes).")
@click.option("--nodes", type=int, help="A gang job: one process on each of this many nodes at once.")
@click.option("--gpus-per-node", type=int, help="GPUs on each node of a gang job (with --nodes).")
@click.option("--priority", type=int, help="Up to your level's ceiling (researcher 10, lead 20, admin 30).")
@click.option("--time-limit", metavar="DURATION", help="Stop it after this long: 3600, 90m, 2h, 1:30:00.")
@click.option(
    "--stall-timeout", metavar="DURATION", help="Stop it after this long without output or progress."
)
@click.option("--name", help="A name to find it by.")
@click.option(
    "--env",
    "env",
    multiple=True,
    metavar="KEY=VALUE",
    help="An environment variable (templates allow only some).",
)
@click.option("--depends-on", multiple=True, metavar="ID[,ID]", help="Jobs that must complete first.")
@click.option(
    "--depends-on-sweep", multiple=True, metavar="ID[,ID]", help="Sweeps whose every job must complete first."
)
@click.option(
    "--after", metavar="TIME", help="Start no earlier: ISO time (local if no zone) or +DURATION (+2h)."
)
@click.option("--off-peak", is_flag=True, help="Start only inside the off-peak window.")
@click.option(
    "--resource",
    "resources",
    multiple=True,
    metavar="NAME",
    help="A named resource held exclusively, e.g. model:flux-dev.",
)
@click.option("--preemptible", is_flag=True, help="May be stopped (and requeued) for urgent work.")
@click.option(
    "--min-memory", metavar="SIZE", help="Every GPU has at least this memory: 40GB, 24G, 16000 (MB)."
)
@click.option("--gpu-model", metavar="GLOB", help="GPU model name glob, e.g. 'A100*'.")
@click.option("--device", "devices", multiple=True, metavar="INDEX[,INDEX]", help="These exact GPU indices.")
@click.option(
    "--label", "labels", multiple=True, metavar="KEY=GLOB", help="A node label the node must match."
)
@click.option(
    "--target",
    type=click.Choice(["auto", "local", "worker"]),
    help="auto (any node), local (the server's), worker (others).",
)
@click.option("--max-attempts", type=int, help="Attempts it may lose to faults before it fails.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say where it would go now (node, GPUs, or position and reason); submit nothing.",
)
@click.option("--no-wait", is_flag=True, help="Submit only if it can start at once (else refused, exit 1).")
@click.option("--wait", is_flag=True, help="Follow its output to the end and exit with its exit code.")
@click.option(
    "--sweep",
    "grid",
    multiple=True,
    metavar="KEY=V1,V2",
    help="Sweep TEMPLATE over these values of a parameter (JSON if they parse; or a JSON list): one job "
    "per combination of all --sweep flags, under one sweep.",
)
@click.option(
    "--sweep-file",
    type=click.File("r"),
    metavar="FILE",
    help="Sweep TEMPLATE over the parameter sets in FILE (a JSON list of objects; - for stdin).",
)
@click.option(
    "--file",
    "jobs_file",
    type=click.File("r"),
    metavar="FILE",
    help="Submit every job in FILE (a JSON list of POST /api/v1/jobs bodies; - for stdin), all or none.",
)
@click.option("-q", "--quiet", is_flag=True, help="Print only the job id (the sweep id for many jobs).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def submit(ctx, template, **options):
    """Submit a job: TEMPLATE with -p parameters, or a command after `--`.

    \b
    Examples:
      gpuq submit hello-gpu -p message="hi there"
      gpuq submit train -p lr=0.001 -p epochs=10 --gpus 2 --time-limit 4h
      gpuq submit --gpus 1 --gpu-model 'A100*' -- python3 train.py --epochs 3
      gpuq submit --dry-run --gpus 4 -- python3 train.py
      gpuq submit --wait -- python3 -c 'raise SystemExit(3)'; echo $?   # 3
      id=$(gpuq submit -q hello-gpu -p message=x); gpuq logs -f "$id"
      gpuq submit train --sweep lr=0.1,0.01 --sweep bs=32,64 --gpus 1   # 4 jobs, one sweep
      gpuq submit train --sweep-file sets.json; gpuq submit --file jobs.json
    """
    argv = ctx.meta.get("gpuq_argv")
    if options["jobs_file"] or options["grid"] or options["sweep_file"]:
        return submit_many(ctx, template, argv, options)
    if (template is None) == (argv is None):
        raise click.UsageError(
            "give a TEMPLATE or a command after `--` (e.g. gpuq submit -- python3 train.py)"
        )
    if argv is not None and not argv:
        raise click.UsageError("the command after `--` is empty")
    if options["params"] and template is None:
        raise click.UsageError("-p goes with a TEMPLATE; a command after `--` takes its own arguments")
    body = submission(template, argv, options)
    state = ctx.ensure_object(State)
    # One key per command: a retry after a dropped connection or a 503 never makes a second job.
    made = state.api.post("/jobs", body, idempotency_key=None if body.get("dry_run") else uuid.uuid4().hex)
    if options["dry_run"]:
        _print_dry_run(made, options["fmt"])
        return
    if options["fmt"] == "json" and not options["wait"]:
        click.echo(json.dumps(made, indent=2))
    elif options["quiet"]:
        click.echo(made["id"])
    else:
        reason = f", waiting: {made['wait_reason']}" if made.get("wait_reason") else ""
        line = f"job {made['id']} submitted ({made['status']}{reason})"
        say(line) if options["wait"] else click.echo(line)
    if options["wait"]:
        ctx.exit(wait_for_end(state.api, made["id"]))


def submit_many(ctx, template, argv, options) -> None:
    """A bulk submission (--file) or a template sweep (--sweep, --sweep-file): one request, one sweep."""
    for flag, key in (("--dry-run", "dry_run"), ("--no-wait", "no_wait"), ("--wait", "wait")):
        if options[key]:
            raise click.UsageError(f"{flag} is for one job, not a sweep or a file of jobs")
    if options["jobs_file"]:
        if template is not None or argv is not None or options["grid"] or options["sweep_file"]:
            raise click.UsageError("--file holds whole jobs: give no TEMPLATE, command or --sweep with it")
        body = parse.json_file(options["jobs_file"], "--file")
        if not isinstance(body, list):
            raise click.BadParameter("a JSON list of jobs", param_hint="--file")
    else:
        if template is None or argv is not None:
            raise click.UsageError("--sweep and --sweep-file sweep a TEMPLATE (not a command after --)")
        body = submission(template, None, options)
        sweep: dict = {}
        if options["grid"]:
            sweep["grid"] = dict(parse.values(text, "--sweep") for text in options["grid"])
        if options["sweep_file"]:
            sweep["sets"] = parse.json_file(options["sweep_file"], "--sweep-file")
        body["sweep"] = sweep
    state = ctx.ensure_object(State)
    made = state.api.post("/jobs", body, idempotency_key=uuid.uuid4().hex)
    sweep = made["sweep"]
    if options["fmt"] == "json":
        click.echo(json.dumps(made, indent=2))
    elif options["quiet"]:
        click.echo(sweep["id"])
    else:
        ids = [job["id"] for job in made["jobs"]]
        counts = ", ".join(f"{n} {status}" for status, n in sorted(sweep["counts"].items()))
        click.echo(
            f"sweep {sweep['id']} submitted: {sweep['size']} jobs {sweep['name']}[0-{sweep['size'] - 1}] "
            f"(ids {ids[0]}-{ids[-1]}; {counts})"
        )


def submission(template, argv, options) -> dict:
    """The POST /api/v1/jobs body: only what the command line gave, so the server's defaults hold."""
    body: dict = {"template": template} if template is not None else {"argv": list(argv)}
    if options["params"]:
        body["params"] = {k: parse.json_value(v) for k, v in (parse.pair(p, "-p") for p in options["params"])}
    simple = (
        "gpu_count",
        "nodes",
        "gpus_per_node",
        "priority",
        "name",
        "gpu_model",
        "target",
        "max_attempts",
    )
    body.update({key: options[key] for key in simple if options[key] is not None})
    if options["time_limit"]:
        body["time_limit_seconds"] = parse.duration(options["time_limit"], "--time-limit")
    if options["stall_timeout"]:
        body["stall_timeout_seconds"] = parse.duration(options["stall_timeout"], "--stall-timeout")
    if options["env"]:
        body["env"] = dict(parse.pair(e, "--env") for e in options["env"])
    if options["depends_on"]:
        body["depends_on"] = parse.ids(options["depends_on"], "--depends-on")
    if options["depends_on_sweep"]:
        body["depends_on_sweeps"] = parse.ids(options["depends_on_sweep"], "--depends-on-sweep")
    if options["after"]:
        body["start_after"] = parse.start_time(options["after"], "--after")
    if options["resources"]:
        body["resources"] = list(options["resources"])
    if options["min_memory"]:
        body["min_gpu_memory_mb"] = parse.memory_mb(options["min_memory"], "--min-memory")
    if options["devices"]:
        body["device_ids"] = parse.ids(options["devices"], "--device")
    if options["labels"]:
        body["node_labels"] = dict(parse.pair(label, "--label") for label in options["labels"])
    for flag, field in (
        ("off_peak", "off_peak_only"),
        ("preemptible", "preemptible"),
        ("dry_run", "dry_run"),
        ("no_wait", "no_wait"),
    ):
        if options[flag]:
            body[field] = True
    return body


def _print_dry_run(answer: dict, fmt: str) -> None:
    if fmt == "json":
        click.echo(json.dumps(answer, indent=2))
    elif answer.get("would_start"):
        gpus = ",".join(map(str, answer.get("gpus") or []))
        click.echo(f"would start now on {answer.get('node')} (GPUs {gpus})")
    else:
        detail = f": {answer['detail']}" if answer.get("detail") else ""
        where = f"position {answer['position']}, " if answer.get("position") else ""
        click.echo(
            f"would wait ({answer.get('status')}; {where}reason {answer.get('reason') or '-'}{detail})"
        )


def wait_for_end(api, job_id: int) -> int:
    """Follow the job's log to stdout until it ends; its exit code (signals as 128+N, like a shell)."""
    with interrupted(job_id):
        follow(api, job_id)
    job = api.get(f"/jobs/{job_id}")
    code = job.get("exit_code")
    say(
        f"job {job_id} {job['status']}"
        + (f" (exit code {code})" if code is not None else "")
        + (f": {job['error']}" if job.get("error") else "")
    )
    if job["status"] == "completed":
        return 0
    if code is None or code == 0:
        return NO_EXIT_CODE
    return 128 - code if code < 0 else min(code, 255)
