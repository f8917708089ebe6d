"""Command-line values to API values: durations, memory sizes, times, KEY=VALUE pairs, id lists."""

import json
import re
from datetime import UTC, datetime, timedelta

import click

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"(\d+)([smhd])")


def duration(text: str, flag: str) -> int:
    """Seconds from `90`, `90s`, `30m`, `1h30m`, `2d`, `1:30:00` or `45:00`."""
    text = text.strip().lower()
    if text.isdigit():
        return int(text)
    if re.fullmatch(r"\d+(:\d{1,2}){1,2}", text):
        seconds = 0
        for part in text.split(":"):
            seconds = seconds * 60 + int(part)
        return seconds
    if text and _DURATION.sub("", text) == "":
        return sum(int(n) * _UNITS[unit] for n, unit in _DURATION.findall(text))
    raise click.BadParameter(
        f"{text!r} is not a duration (e.g. 3600, 90m, 1h30m, 2d, 1:30:00)", param_hint=flag
    )


def memory_mb(text: str, flag: str) -> int:
    """MB from `40GB`, `40G`, `512MB`, `1.5T` or a plain number of MB (as the API's min_gpu_memory_mb)."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([mgt]?)i?b?", text.strip().lower())
    if not match:
        raise click.BadParameter(f"{text!r} is not a size (e.g. 40GB, 24G, 512MB)", param_hint=flag)
    number, unit = float(match.group(1)), match.group(2)
    return round(number * {"": 1, "m": 1, "g": 1024, "t": 1024 * 1024}[unit])


def start_time(text: str, flag: str) -> str:
    """An ISO time (local time if it names no zone), or `+DURATION` from now; as ISO for the API."""
    text = text.strip()
    if text.startswith("+"):
        return (datetime.now(UTC) + timedelta(seconds=duration(text[1:], flag))).isoformat()
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a time (e.g. 2026-12-01T20:00, 2026-12-01 20:00+01:00, +2h)", param_hint=flag
        ) from None
    if when.tzinfo is None:
        when = when.astimezone()  # the local time zone of this machine
    return when.isoformat()


def pair(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise click.BadParameter(f"{text!r} is not KEY=VALUE", param_hint=flag)
    return key, value


def json_value(text: str):
    """`-p` values are JSON when they parse as JSON (`3`, `true`, `[1,2]`, `"3"`), else text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def ids(values, flag: str) -> list[int]:
    """Job ids from repeated flags, each possibly comma-separated: `--depends-on 3,4 --depends-on 7`."""
    found = []
    for value in values:
        for part in str(value).split(","):
            if not part.strip().isdigit():
                raise click.BadParameter(f"{part!r} is not a job id", param_hint=flag)
            found.append(int(part))
    return found


def values(text: str, flag: str) -> tuple[str, list]:
    """`lr=0.1,0.01` (each JSON if it parses, else text) or `lr=[0.1, 0.01]` (a JSON list) for a sweep."""
    key, raw = pair(text, flag)
    parsed = json_value(raw)
    found = parsed if isinstance(parsed, list) else [json_value(part) for part in raw.split(",")]
    if not found or raw == "":
        raise click.BadParameter(f"{text!r} has no values (e.g. lr=0.1,0.01)", param_hint=flag)
    return key, found


def json_file(file, flag: str):
    """The JSON in an open file, or a usage error naming the flag."""
    try:
        return json.load(file)
    except ValueError as error:
        raise click.BadParameter(f"{file.name}: not JSON ({error})", param_hint=flag) from None
