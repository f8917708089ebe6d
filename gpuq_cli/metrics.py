"""`gpuq metrics`: the time series a job reports (its progress numbers, its GPUs' readings), as rows."""

import click

from gpuq_cli.main import cli, pass_state
from gpuq_cli.output import emit, output_options


@cli.command()
@click.argument("job_id", metavar="ID", type=click.IntRange(min=1))
@click.option("--attempt", type=click.IntRange(min=1), help="Which attempt (default: the latest).")
@click.option("--series", "names", metavar="NAMES", help="Only these series (comma-separated).")
@click.option("--last", type=click.IntRange(min=1), help="Only the last LAST points of each series.")
@output_options("series,at,value,unit")
@pass_state
def metrics(state, job_id, attempt, names, last, fields, default, fmt):
    """A job's charts as numbers: one row per point of each series of one attempt, in time order. Series
    are the numbers the job writes to its GPUQ_PROGRESS_FILE (loss, accuracy, …) and its GPUs' readings
    (gpu0.utilization_percent, gpu0.memory_used_mb), each kept to a bounded number of points.

    \b
    Examples:
      gpuq metrics 12
      gpuq metrics 12 --series loss --last 5
      gpuq metrics 12 --attempt 1 --format csv > run1.csv
    """
    answer = state.api.get(f"/jobs/{job_id}/metrics", attempt=attempt, series=names)
    rows = [
        {"series": s["name"], "unit": s["unit"], "attempt": answer["attempt"], **point}
        for s in answer["series"]
        for point in (s["points"][-last:] if last else s["points"])
    ]
    emit(rows, fields, default, fmt)
