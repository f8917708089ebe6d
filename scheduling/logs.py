"""Read the tail of a job's log without loading the whole file."""

import codecs
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


def read_from(
    path: str, offset: int, *, final: bool = False, limit: int = 1024 * 1024
) -> tuple[str, int, int]:
    """Follow a log: the text from byte `offset` (at most `limit` bytes), the offset to ask for next, and
    the file's size. A UTF-8 character cut by the end is left for the next read unless `final` (the job
    has ended: nothing more will come). Missing file: nothing yet."""
    if not path:
        return "", offset, 0
    try:
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            start = min(offset, size)
            handle.seek(start)
            data = handle.read(limit)
    except OSError:
        return "", offset, 0
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=final)
    held_back = len(decoder.getstate()[0])
    return text, start + len(data) - held_back, size
