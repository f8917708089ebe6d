"""Commands about the queue and the machines: queue (ls), nodes, gpus, quota, stats, templates."""

import click

from gpuq_cli.jobs import ACTIVE, queue_rows
from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, emit_one, output_options

FINISHED = ("completed", "failed", "cancelled", "rejected")
# What GET /api/v1/queue says of every job; any other field (-o progress.fraction) comes from
# GET /api/v1/jobs, for the jobs you may see in full.
QUEUE_FIELDS = {
    "id", "name", "owner", "status", "priority", "gpu_count", "position", "wait_reason", "wait_detail",
    "team", "node", "gpu_indices", "submitted_at", "started_at", "estimated_start", "off_peak_only",
    "start", "job_id", "user",
}  # fmt: skip


@cli.command()
@click.option("--status", help="Only these statuses (comma-separated), e.g. pending,running.")
@click.option("--owner", help="Only this user's jobs.")
@click.option("--mine", is_flag=True, help="Only your jobs.")
@click.option(
    "-l", "--limit", type=click.IntRange(min=0), help="At most this many waiting (and finished) jobs."
)
@click.option(
    "-a", "--include-completed", is_flag=True, help="Also finished jobs (newest first, 50 unless --limit)."
)
@output_options("id,name,owner,status,priority,gpu_count,position,wait_reason,start,node")
@pass_state
def queue(state, status, owner, mine, limit, include_completed, fields, default, fmt):
    """The queue (alias `ls`): running jobs, waiting jobs in the order they will start (position,
    reason, estimated start), then held ones (scheduled, blocked, paused).

    START is when a running job started, or when a waiting one is expected to.

    \b
    Examples:
      gpuq queue
      gpuq ls --mine --status pending
      gpuq queue -o id,owner,status,progress.fraction,params.lr
      gpuq queue --format json | jq '.[] | select(.wait_reason == "resources")'
      gpuq queue -a --format csv > jobs.csv
    """
    if mine and owner:
        raise click.UsageError("--mine or --owner, not both")
    if mine:
        owner = state.api.get("/me")["username"]
    wanted = [s for s in (status or "").split(",") if s]
    active = [s for s in wanted if s not in FINISHED]
    rows = []
    if active or not wanted:
        rows = queue_rows(state.api, status=",".join(active) or None, owner=owner, limit=limit)
    finished = [s for s in wanted if s in FINISHED] or (list(FINISHED) if include_completed else [])
    if finished:
        rows += jobs(
            state.api, status=",".join(finished), owner=owner, limit=limit if limit is not None else 50
        )
    for row in rows:
        row["start"] = row.get("started_at") or row.get("estimated_start")
    if fields and any(f.split(".")[0] not in QUEUE_FIELDS for f in fields):
        full = {j["id"]: j for j in jobs(state.api, status=",".join(wanted or ACTIVE), owner=owner)}
        rows = [{**full.get(r["id"], {}), **r} for r in rows]
    emit(rows, fields, default, fmt)


def jobs(api, limit: int | None = None, **filters) -> list[dict]:
    """GET /api/v1/jobs, page after page (newest first), up to `limit` jobs."""
    return api.all("/jobs", limit, **filters)


def _allocation(api) -> dict:
    return api.get("/system/status", include_allocation="true")


@cli.command()
@output_options("name,status,drained,simulated,gpus,free,labels,heartbeat_at")
@pass_state
def nodes(state, fields, default, fmt):
    """The nodes (GPU machines): status, drained, how many GPUs and how many are free, labels.

    \b
    Examples:
      gpuq nodes
      gpuq nodes -o name,labels.zone --format csv
    """
    body = _allocation(state.api)
    free = set(body["gpu_allocation"]["available_gpus"])
    rows = []
    for node in body["nodes"]:
        rows.append(
            {
                **node,
                "gpus": len(node["gpus"]),
                "free": sum(f"{node['name']}:{g['index']}" in free for g in node["gpus"]),
                "devices": node["gpus"],
            }
        )
    emit(rows, fields, default, fmt)


@cli.command()
@output_options("node,index,name,memory_gb,allocated,job_id,owner,healthy,busy,utilization_percent")
@pass_state
def gpus(state, fields, default, fmt):
    """Every GPU and what holds it (from /api/v1/system/status?include_allocation=true).

    \b
    Examples:
      gpuq gpus
      gpuq gpus --format json -o node,index,job_id
    """
    emit(_allocation(state.api)["gpu_allocation"]["devices"], fields, default, fmt)


@cli.command()
@output_options("scope,window,used_gpu_seconds,limit_gpu_seconds,remaining_gpu_seconds,warning,exceeded")
@pass_state
def quota(state, fields, default, fmt):
    """Your (and your team's) GPU time today and this week against the quota.

    \b
    Examples:
      gpuq quota
      gpuq quota --format json
    """
    body = state.api.get("/quota/status")
    if fmt == "json" and not fields:
        emit_one(body, None, "json")
        return
    rows = []
    for scope in ("user", "team"):
        part = body.get(scope)
        if part:
            name = part.get("name", "you") if scope == "team" else "you"
            rows += [{"scope": name, "window": w, **part[w]} for w in ("daily", "weekly")]
    emit(rows, fields, default, fmt)


@cli.command()
@output_options("all fields")
@pass_state
def stats(state, fields, default, fmt):
    """Queue statistics: depth, running, limits, average wait (24 h), jobs by status and user.

    \b
    Examples:
      gpuq stats
      gpuq stats -o queue_depth,running,by_status.pending --format csv
    """
    emit_one(state.api.get("/queue/stats"), fields, fmt)


@cli.command()
@output_options("name,description,default_gpu_count,batchable")
@pass_state
def templates(state, fields, default, fmt):
    """The job templates you can submit (`gpuq submit NAME -p …`).

    \b
    Example:
      gpuq templates -o name,params_schema.required --format json
    """
    emit(state.api.all("/templates"), fields, default, fmt)


@cli.command()
@click.option("-l", "--limit", type=click.IntRange(min=1), help="At most this many jobs (oldest first).")
@output_options("id,name,owner,team,gpu_count,cost.estimate,rule,submitted_at")
@pass_state
def approvals(state, limit, fields, default, fmt):
    """Leads and admins: the blocked jobs waiting for your decision (your inbox), oldest first, with
    the estimated cost and the rule that blocked each. Decide with `gpuq approve` or `gpuq reject`.

    \b
    Examples:
      gpuq approvals
      gpuq approvals -o id,owner,cost.estimate,cost.max_cost --format csv
      gpuq approve 12 --reason "deadline on Friday"
    """
    emit(state.api.all("/approvals", limit), fields, default, fmt)
