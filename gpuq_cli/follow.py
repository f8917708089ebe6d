"""Reading a job's log through GET /api/v1/jobs/{id}/log: whole (?offset=), its last lines (windows
?before= from the end), or followed until the job ends."""

import contextlib
import sys
import time

import click

from gpuq_cli.output import say

POLL_SECONDS = 0.5  # between two reads of a log that has nothing new
TAIL_WINDOW_BYTES = 1024 * 1024  # `-n`: the log's end is read backwards a window at a time
TAIL_MAX_BYTES = 16 * TAIL_WINDOW_BYTES


def follow(api, job_id: int, *, keep_following: bool = True, last: int | None = None) -> None:
    """Write the log from its start (or only its `last` lines) to stdout; with `keep_following`, go on
    until the job has ended and every byte is out, else stop at the end of what is there now."""
    offset = 0
    if last is not None:
        text, offset = _last_lines(api, job_id, last)
        _write(text)
    while True:
        chunk = api.get(f"/jobs/{job_id}/log", offset=offset)
        text, offset = chunk["text"], chunk["next_offset"]
        caught_up = offset >= chunk["size"]
        _write(text)
        if caught_up and (chunk["finished"] or not keep_following):
            return
        if caught_up:
            time.sleep(POLL_SECONDS)


def _last_lines(api, job_id: int, last: int) -> tuple[str, int]:
    """The log's last `last` lines (and a last line still being written) and the byte after them, read
    backwards from the end in windows (at most TAIL_MAX_BYTES), never the whole log."""
    text, before, end = "", None, 0
    for _ in range(TAIL_MAX_BYTES // TAIL_WINDOW_BYTES):
        window = api.get(f"/jobs/{job_id}/log", bytes=TAIL_WINDOW_BYTES, before=before)
        end = window["next_offset"] if before is None else end
        text = window["text"] + text
        if text.count("\n") > last or window["offset"] <= window["kept_from"]:
            break
        before = window["offset"]
    lines = text.split("\n")
    being_written = lines.pop()
    return "".join(line + "\n" for line in lines[-last:]) + being_written, end


def _write(text: str) -> None:
    if text:
        sys.stdout.write(text)
        sys.stdout.flush()


@contextlib.contextmanager
def interrupted(job_id: int):
    """Ctrl-C stops following, not the job: say so, and exit 130 as a shell would."""
    try:
        yield
    except KeyboardInterrupt:
        say(f"\ngpuq: stopped following; job {job_id} goes on (gpuq cancel {job_id} stops it)")
        raise click.exceptions.Exit(130) from None
