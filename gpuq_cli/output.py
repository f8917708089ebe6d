"""What `gpuq` prints: rows as a table, JSON or CSV, with `-o` choosing fields in dot notation
(`progress.fraction`, `gpu_indices.0`)."""

import csv
import functools
import json
import re
from datetime import datetime

import click

FORMATS = ("table", "json", "csv")
# Names from seed 001's command line, so that its examples work here too.
ALIASES = {"job_id": "id", "user": "owner", "config_name": "template"}
_ISO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def output_options(default_fields: str):
    """`-o FIELDS` and `--format` for a command that lists rows; the command gets `fields` and `fmt`."""

    def decorate(command):
        @click.option(
            "-o",
            "--output",
            "fields",
            metavar="FIELDS",
            help=f"Comma-separated fields, dot notation for nested ones. Default: {default_fields}.",
        )
        @click.option("--format", "fmt", type=click.Choice(FORMATS), default="table", show_default=True)
        @functools.wraps(command)
        def wrapper(*args, fields, fmt, **kwargs):
            chosen = split_fields(fields) if fields else None
            return command(*args, fields=chosen, default=split_fields(default_fields), fmt=fmt, **kwargs)

        return wrapper

    return decorate


def split_fields(text: str) -> list[str]:
    fields = [f.strip() for f in text.split(",") if f.strip()]
    if not fields:
        raise click.BadParameter("name at least one field", param_hint="-o")
    return fields


def pick(row, path: str):
    """The value at `path` (dots go into objects and lists), or None where there is nothing."""
    value = row
    for i, part in enumerate(path.split(".")):
        if i == 0 and isinstance(value, dict) and part not in value:
            part = ALIASES.get(part, part)
        if isinstance(value, dict):
            value = value.get(part)
        elif isinstance(value, list) and part.lstrip("-").isdigit() and -len(value) <= int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def emit(rows: list[dict], fields: list[str] | None, default: list[str], fmt: str) -> None:
    """Print rows. JSON without `-o` prints each row whole; with it, objects keyed by the given fields."""
    out = click.get_text_stream("stdout")
    if fmt == "json":
        data = rows if fields is None else [{f: pick(r, f) for f in fields} for r in rows]
        click.echo(json.dumps(data, indent=2, default=str))
        return
    fields = fields or default
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(fields)
        for row in rows:
            writer.writerow([_csv_cell(pick(row, f)) for f in fields])
        return
    table = [[f.upper() for f in fields]] + [[_cell(pick(r, f)) for f in fields] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(fields))]
    for line in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip())


def emit_one(row: dict, fields: list[str] | None, fmt: str) -> None:
    """One object: JSON as it is (or its fields), CSV as one row, a table as `field: value` lines."""
    if fmt == "json":
        data = row if fields is None else {f: pick(row, f) for f in fields}
        click.echo(json.dumps(data, indent=2, default=str))
        return
    if fmt == "csv":
        emit([row], fields, fields or list(row), fmt)
        return
    for field in fields or list(row):
        value = pick(row, field)
        if isinstance(value, dict) and fields is None:
            value = ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
        click.echo(f"{field}: {_cell(value)}")


def _csv_cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _cell(value) -> str:
    """A value as a person reads it in a table: local times, lists joined, nothing as `-`."""
    if value is None or value == "" or value == [] or value == {}:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, separators=(",", ":"))
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1000 else f"{value:.0f}"
    if isinstance(value, str) and _ISO_TIME.match(value):
        return local_time(value)
    return str(value).replace("\n", " ")


def local_time(iso: str) -> str:
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return iso


def say(message: str) -> None:
    """A note for the person (stderr), so that stdout stays what a script parses."""
    click.echo(message, err=True)
