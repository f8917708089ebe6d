"""Reading a job's log through GET /api/v1/jobs/{id}/log?offset=: whole, its last lines, or followed
until the job ends."""

import contextlib
import sys
import time
from collections import deque

import click

from gpuq_cli.output import say

POLL_SECONDS = 0.5  # between two reads of a log that has nothing new


def follow(api, job_id: int, *, keep_following: bool = True, last: int | None = None) -> None:
    """Write the log from its start (or only its `last` lines) to stdout; with `keep_following`, go on
    until the job has ended and every byte is out, else stop at the end of what is there now."""
    offset = 0
    held = deque(maxlen=last) if last is not None else None  # the last lines, until we are caught up
    pending_part = ""
    while True:
        chunk = api.get(f"/jobs/{job_id}/log", offset=offset)
        text, offset = chunk["text"], chunk["next_offset"]
        caught_up = offset >= chunk["size"]
        if held is not None:
            lines = (pending_part + text).split("\n")
            pending_part = lines.pop()
            held.extend(lines)
            if caught_up:
                _write("".join(line + "\n" for line in held) + pending_part)
                held, pending_part = None, ""
        elif text:
            _write(text)
        if caught_up and (chunk["finished"] or not keep_following):
            return
        if caught_up:
            time.sleep(POLL_SECONDS)


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
