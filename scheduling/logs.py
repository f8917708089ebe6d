"""Read the tail of a job's log without loading the whole file."""

import os

_BLOCK = 64 * 1024


def tail(path: str, lines: int) -> tuple[list[str], bool]:
    """The last `lines` lines of the file and whether earlier lines exist. Missing file: no lines."""
    if not path:
        return [], False
    try:
        with open(path, "rb") as handle:
            handle.seek(0, os.SEEK_END)
            position = handle.tell()
            data = b""
            while position > 0 and data.count(b"\n") <= lines:
                step = min(_BLOCK, position)
                position -= step
                handle.seek(position)
                data = handle.read(step) + data
    except OSError:
        return [], False
    text = data.decode("utf-8", errors="replace").splitlines()
    return text[-lines:], position > 0 or len(text) > lines
