"""Commands on jobs by id: show, logs, cancel (or all matching), pause, resume, priority, approve,
reject."""

import shlex

import click

from gpuq_cli.client import Failure
from gpuq_cli.follow import follow, interrupted
from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, emit_one, local_time, output_options, say

WAITING = ("scheduled", "blocked", "pending", "paused")
ACTIVE = (*WAITING, "dispatched", "running")
job_ids = click.argument("job_ids", metavar="ID...", nargs=-1, required=True, type=click.IntRange(min=1))


@cli.command()
@job_ids
@output_options("all fields")
@pass_state
def show(state, job_ids, fields, default, fmt):
    """One or more jobs in full: status, reason, resources, placement, exit code, transitions; a waiting
    job also its queue position and estimated start.

    \b
    Examples:
      gpuq show 12
      gpuq show 12 --format json
      gpuq show 12 13 -o id,status,exit_code,progress.fraction --format csv
    """
    jobs = []
    for job_id in job_ids:
        job = state.api.get(f"/jobs/{job_id}")
        if job["status"] == "pending":
            place = state.api.get(f"/queue/position/{job_id}")
            job.update(position=place.get("position"), estimated_start=place.get("estimated_start"))
        jobs.append(job)
    if fmt != "table" or fields:
        emit(jobs, fields, fields or list(jobs[0]), fmt)
        return
    for i, job in enumerate(jobs):
        if i:
            click.echo()
        transitions = job.pop("transitions", [])
        if isinstance(job.get("argv"), list):
            job["argv"] = shlex.join(job["argv"])  # as a shell would show it (it never runs in one)
        emit_one(job, None, "table")
        click.echo("transitions:")
        for t in transitions:
            by = f" by {t['by']}" if t.get("by") else ""
            why = f": {t['reason']}" if t.get("reason") else ""
            click.echo(f"  {local_time(t['at'])}  {t['from_status'] or '-'} -> {t['to_status']}{by}{why}")


@cli.command()
@click.argument("job_id", metavar="ID", type=click.IntRange(min=1))
@click.option(
    "-f", "--follow", "keep_following", is_flag=True, help="Keep printing new output until the job ends."
)
@click.option(
    "-n",
    "--lines",
    "last",
    type=click.IntRange(min=1),
    help="Only the last LINES lines (then follow, with -f).",
)
@pass_state
def logs(state, job_id, keep_following, last):
    """A job's output (stdout and stderr), whole or its last lines; -f follows it to its end.

    \b
    Examples:
      gpuq logs 12
      gpuq logs 12 -n 20
      gpuq logs -f 12
    """
    with interrupted(job_id):
        follow(state.api, job_id, keep_following=keep_following, last=last)


def _each(state, job_ids, action: str, body: dict | None = None) -> None:
    """POST /jobs/{id}/{action} for each id; go on past a refusal and exit with its code at the end."""
    failed = None
    for job_id in job_ids:
        try:
            job = state.api.post(f"/jobs/{job_id}/{action}", body or {})
        except Failure as error:
            say(f"gpuq: job {job_id}: {error.format_message()}")
            failed = error
            continue
        stopping = job.get("status") == "running" and job.get("stop_request")
        note = f" (stopping: {job['stop_request']} requested)" if stopping else ""
        click.echo(f"job {job_id}: {job['status']}{note}")
    if failed:
        raise click.exceptions.Exit(failed.exit_code)


@cli.command()
@click.argument("job_ids", metavar="[ID]...", nargs=-1, type=click.IntRange(min=1))
@click.option("--all", "every", is_flag=True, help="Every waiting or running job that the filters select.")
@click.option("--status", help="With --all: only these statuses (comma-separated).")
@click.option("--owner", help="With --all: this user's jobs (default: yours).")
@click.option("--mine", is_flag=True, help="With --all: your jobs (the default).")
@click.option("--name", "name_glob", help="With --all: only jobs whose name matches this glob.")
@click.option("-y", "--yes", is_flag=True, help="Do not ask before cancelling --all.")
@click.option("--reason", default="", help="Recorded in the job's transitions.")
@pass_state
def cancel(state, job_ids, every, status, owner, mine, name_glob, yes, reason):
    """Cancel jobs: a waiting job ends at once; a running one is stopped (SIGTERM, grace, SIGKILL).

    \b
    Examples:
      gpuq cancel 12 13
      gpuq cancel --all                      # all your waiting and running jobs, after a question
      gpuq cancel --all --status pending --name 'sweep-*' --yes
      gpuq cancel --all --owner alice        # admins and leads
    """
    if bool(job_ids) == every:
        raise click.UsageError("give job ids, or --all with filters")
    if not every and (status or owner or mine or name_glob):
        raise click.UsageError("--status, --owner, --mine and --name go with --all")
    if every:
        import fnmatch

        if mine and owner:
            raise click.UsageError("--mine or --owner, not both")
        who = owner or state.api.get("/me")["username"]
        rows = queue_rows(state.api, status=status, owner=who)
        rows = [r for r in rows if r["status"] in ACTIVE]
        if name_glob:
            rows = [r for r in rows if fnmatch.fnmatchcase(r.get("name") or "", name_glob)]
        if not rows:
            say("no job to cancel")
            return
        listing = ", ".join(f"{r['id']} ({r['status']})" for r in rows)
        if not yes:
            click.confirm(f"Cancel {len(rows)} job(s) of {who}: {listing}?", abort=True, err=True)
        job_ids = [r["id"] for r in rows]
    _each(state, job_ids, "cancel", {"reason": reason} if reason else None)


def queue_rows(api, **filters) -> list[dict]:
    """The queue's running, waiting and held jobs (GET /api/v1/queue), in that order."""
    queue = api.get("/queue", **filters)
    return [*queue["running"], *queue["pending"], *queue["held"]]


@cli.command()
@job_ids
@click.option("--reason", default="", help="Recorded in the job's transitions.")
@pass_state
def pause(state, job_ids, reason):
    """Hold waiting jobs, or stop running ones (GPUs freed) and hold them, until `gpuq resume`.

    \b
    Example:
      gpuq pause 12 --reason "need the GPUs for a demo"
    """
    _each(state, job_ids, "pause", {"reason": reason})


@cli.command()
@job_ids
@pass_state
def resume(state, job_ids):
    """Put paused jobs back in the queue.

    \b
    Example:
      gpuq resume 12
    """
    _each(state, job_ids, "resume")


@cli.command()
@click.argument("job_id", metavar="ID", type=click.IntRange(min=1))
@click.argument("priority", type=int)
@click.option("--reason", default="", help="Recorded in the job's audit.")
@pass_state
def priority(state, job_id, priority, reason):
    """Set a job's priority (owners may lower theirs; leads their team's up to 20; admins any).

    \b
    Examples:
      gpuq priority 12 5
      gpuq priority 12 25 --reason "deadline on Friday"
      gpuq priority 12 -- -10               # a negative priority after --
    """
    job = state.api.post(f"/jobs/{job_id}/priority", {"priority": priority, "reason": reason})
    click.echo(f"job {job_id}: priority {job['priority']}")


@cli.command()
@job_ids
@click.option("--reason", default="", help="Recorded in the job's transitions.")
@pass_state
def approve(state, job_ids, reason):
    """Let blocked jobs (awaiting approval) go on: leads their team's, admins any.

    \b
    Example:
      gpuq approve 12 13
    """
    _each(state, job_ids, "approve", {"reason": reason})


@cli.command()
@job_ids
@click.option("--reason", required=True, help="Why (required; the owner sees it).")
@pass_state
def reject(state, job_ids, reason):
    """End blocked jobs as rejected, with a reason.

    \b
    Example:
      gpuq reject 12 --reason "use the small model first"
    """
    _each(state, job_ids, "reject", {"reason": reason})


__all__ = ["emit"]
