"""Search a job's stored log on the server, a bounded piece at a time: each call reads at most
SCAN_BYTES from a byte offset on and returns up to `limit` matches with where to go on from, so a
search of a gigabyte is many cheap calls, never one that holds the log in memory."""

from dataclasses import dataclass

from scheduling import logs

SCAN_BYTES = 16 * 1024 * 1024  # the most one call reads
CONTEXT_BYTES = 120  # shown on each side of a match, within its line
MAX_QUERY = 200  # characters


@dataclass(frozen=True)
class Match:
    """A match at byte `offset`. `text` is its line (or the part around it for a long line), starting
    at byte `line_offset`, a character boundary; the match is at character `column` of `text`."""

    offset: int
    line_offset: int
    column: int
    text: str


@dataclass(frozen=True)
class Page:
    matches: list[Match]
    next: int | None  # where the next call goes on from; None: the search reached the log's end
    size: int


def search(
    job_id: int, query: str, *, start: int = 0, limit: int = 50, scan_bytes: int | None = None
) -> Page:
    """Matches of `query` (case-insensitive for ASCII letters, literal text) from byte `start` on."""
    scan_bytes = scan_bytes or SCAN_BYTES
    needle = query.encode().lower()  # bytes.lower() changes ASCII letters only: offsets stay the same
    end = logs.size(job_id)
    buffer, buffer_start = b"", max(start, 0)  # the bytes not yet searched, plus some context before them
    searched = buffer_start  # matches that begin before this have been reported
    matches: list[Match] = []
    after = logs.chunk_at(job_id, buffer_start) - 1
    while searched < end:
        batch = logs.batches(job_id, after, end)
        if not batch:
            break
        for offset, data in batch:
            if offset + len(data) <= searched:
                continue  # before where this search starts
            if offset != buffer_start + len(buffer):  # a gap (bytes not kept) or the first chunk
                buffer, buffer_start = b"", offset
                searched = max(searched, offset)
            buffer += data
            last = offset + len(data) == end
            # A match that could run past the buffer's end waits for the next chunk (unless it is the end).
            settled = buffer_start + len(buffer) - (0 if last else len(needle) - 1)
            lowered = buffer.lower()
            index = lowered.find(needle, searched - buffer_start)
            while 0 <= index and buffer_start + index < settled:
                matches.append(_match(buffer, buffer_start, index, len(needle)))
                if len(matches) == limit:
                    return Page(matches, buffer_start + index + 1, end)
                index = lowered.find(needle, index + len(needle))
            searched = max(searched, settled)
            keep = max(searched - buffer_start - CONTEXT_BYTES, 0)
            buffer, buffer_start = buffer[keep:], buffer_start + keep
            if searched - max(start, 0) >= scan_bytes:
                return Page(matches, searched if searched < end else None, end)
        after = batch[-1][0]
    return Page(matches, None, end)


def _match(buffer: bytes, buffer_start: int, index: int, length: int) -> Match:
    """The match at `index` of `buffer` with its line around it, clipped to CONTEXT_BYTES each side."""
    newline = buffer.rfind(b"\n", max(index - CONTEXT_BYTES, 0), index)
    line_start = newline + 1 if newline >= 0 else logs.char_start(buffer, max(index - CONTEXT_BYTES, 0))
    line_end = buffer.find(b"\n", index + length, index + length + CONTEXT_BYTES)
    line_end = line_end if line_end >= 0 else min(len(buffer), index + length + CONTEXT_BYTES)
    column = len(buffer[line_start:index].decode("utf-8", errors="replace"))
    text = buffer[line_start:line_end].decode("utf-8", errors="replace")
    return Match(buffer_start + index, buffer_start + line_start, column, text)
