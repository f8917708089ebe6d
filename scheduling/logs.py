"""Read a job's log from the chunks its nodes shipped to the database (scheduling.logship), without
loading the whole log: every read finds its chunks by (job, offset) in the index of the unique position,
so the tail, an earlier window and a follow each read a few chunks whatever the log's size."""

import codecs
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from scheduling.models import LogChunk

CHUNK_BYTES = 64 * 1024  # the most a stored chunk holds (scheduling.logship writes them)
TAIL_MAX_BYTES = 1024 * 1024  # the most a tail by lines reads: a huge line shows as its last MiB
WINDOW_BYTES = 64 * 1024  # a window's size unless asked (earlier parts, the viewer's first view)
WINDOW_MAX_BYTES = 1024 * 1024
_STREAM_BATCH = 16  # chunks per query when streaming the whole log (a MiB in memory at most)


@dataclass(frozen=True)
class Window:
    """A piece of the log: `text` is the bytes from `offset` to `next_offset`, whole characters and,
    unless one line is longer than the window, whole lines at its start. `kept_from` is the log's first
    stored byte (bytes before it are no longer kept), `size` its end."""

    text: str
    offset: int
    next_offset: int
    kept_from: int
    size: int


def size(job_id: int) -> int:
    """Bytes of the job's log so far (its stored end, counting bytes no longer kept)."""
    last = LogChunk.objects.filter(job_id=job_id).order_by("-offset").values("offset", "size").first()
    return last["offset"] + last["size"] if last else 0


def kept_from(job_id: int) -> int:
    """The first byte still stored (0 unless the head was dropped; 0 for no log)."""
    first = LogChunk.objects.filter(job_id=job_id).order_by("offset").values("offset").first()
    return first["offset"] if first else 0


def tail(job_id: int, lines: int) -> tuple[list[str], bool]:
    """The last `lines` lines of the log and whether earlier text exists. Reads backwards a few chunks
    at a time, at most TAIL_MAX_BYTES: a line longer than that shows as its end. No log yet: no lines."""
    pieces: list[bytes] = []  # newest first; joined once (prepending each chunk was quadratic)
    newlines = read = 0
    before, first = None, None
    while newlines <= lines and read < TAIL_MAX_BYTES:
        query = LogChunk.objects.filter(job_id=job_id)
        if before is not None:
            query = query.filter(offset__lt=before)
        batch = list(query.order_by("-offset").values_list("offset", "data")[:4])
        for offset, chunk in batch:
            chunk = bytes(chunk)
            pieces.append(chunk)
            newlines += chunk.count(b"\n")
            read += len(chunk)
            first = offset
        if len(batch) < 4:
            before = None
            break
        before = batch[-1][0]
    data = b"".join(reversed(pieces))
    cut = len(data) > TAIL_MAX_BYTES
    if cut:
        data = data[char_start(data, len(data) - TAIL_MAX_BYTES) :]
    text = data.decode("utf-8", errors="replace").splitlines()
    earlier = cut or before is not None or bool(first)  # more chunks, a head no longer kept, or cut
    return text[-lines:], earlier or len(text) > lines


def window(job_id: int, before: int | None = None, limit: int = WINDOW_BYTES) -> Window:
    """The text just before byte `before` (the log's end if None): at most `limit` bytes, starting at a
    line's start when the window holds one, and never with half a character at either end (a character
    still being written at the log's end is left for a follow from `next_offset`)."""
    end = size(job_id)
    start_kept = kept_from(job_id)
    before = end if before is None else max(min(before, end), start_kept)
    low = max(before - limit - 1, start_kept)  # one byte more: is the window's start a line's start?
    rows = (
        LogChunk.objects.filter(job_id=job_id, offset__lt=before, offset__gte=low - CHUNK_BYTES + 1)
        .order_by("offset")
        .values_list("offset", "data")
    )
    pieces, start = _contiguous_back(list(rows), before)
    data = b"".join(pieces)[max(low - start, 0) :] if pieces else b""
    start = before - len(data)
    if start > start_kept:  # earlier text exists: begin at a line's start, or at least a character's
        newline = data.find(b"\n")
        skip = newline + 1 if 0 <= newline < len(data) - 1 else char_start(data, 0)
        data, start = data[skip:], start + skip
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=False)
    held_back = len(decoder.getstate()[0])
    return Window(text, start, before - held_back, start_kept, end)


def _contiguous_back(rows: list[tuple[int, bytes]], before: int) -> tuple[list[bytes], int]:
    """The chunks that end the stored stream at `before`, going back until a gap; and where they start."""
    pieces: list[bytes] = []
    expected = start = before
    for offset, data in reversed(rows):
        data = bytes(data)[: max(before - offset, 0)]
        if expected is not None and offset + len(data) != expected:
            break
        pieces.append(data)
        start = expected = offset
    pieces.reverse()
    return pieces, start


def char_start(data: bytes, index: int) -> int:
    """The first index at or after `index` that starts a UTF-8 character (skips at most 3 continuation
    bytes: anything else is invalid and decoded as replacement characters)."""
    for step in range(4):
        if index + step >= len(data) or data[index + step] & 0xC0 != 0x80:
            return index + step
    return index


def read_from(
    job_id: int, offset: int, *, final: bool = False, limit: int = 1024 * 1024
) -> tuple[str, int, int, int]:
    """Follow a log: the text from byte `offset` (at most about `limit` bytes), where that text starts
    (later than `offset` when those bytes are no longer kept), the offset to ask for next, and the log's
    size. A UTF-8 character cut by the end is left for the next read unless `final` (the job has ended:
    nothing more will come)."""
    end = size(job_id)
    offset = min(offset, end)
    chunks = LogChunk.objects.filter(job_id=job_id)
    first = chunks.filter(offset__lte=offset).order_by("-offset").values("offset", "size").first()
    if first is None or first["offset"] + first["size"] <= offset:  # not kept (head dropped) or a gap
        first = chunks.filter(offset__gt=offset).order_by("offset").values("offset", "size").first()
        if first is None:
            return "", offset, offset, end
        offset = first["offset"]
    pieces, read, expected = [], 0, first["offset"]
    rows = chunks.filter(offset__gte=first["offset"]).order_by("offset").values_list("offset", "data")
    for position, chunk in rows[: limit // CHUNK_BYTES + 2]:
        if position != expected or read >= limit:
            break  # a gap (bytes not kept) ends this read; the next one starts after it
        pieces.append(bytes(chunk))
        read += len(chunk)
        expected = position + len(chunk)
    data = b"".join(pieces)[offset - first["offset"] :]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=final)
    held_back = len(decoder.getstate()[0])
    return text, offset, offset + len(data) - held_back, end


def chunk_at(job_id: int, offset: int) -> int:
    """The offset of the stored chunk that holds byte `offset` (or the first kept one after it)."""
    row = (
        LogChunk.objects.filter(job_id=job_id, offset__lte=offset)
        .order_by("-offset")
        .values("offset")
        .first()
    )
    return row["offset"] if row else kept_from(job_id)


def batches(job_id: int, after: int = -1, end: int | None = None, count: int = _STREAM_BATCH):
    """Stored chunks in order, `count` at a time: (offset, bytes) of those starting after `after`
    and before `end`. A keyset page, so each call costs the same wherever it starts."""
    query = LogChunk.objects.filter(job_id=job_id, offset__gt=after)
    if end is not None:
        query = query.filter(offset__lt=end)
    return [
        (offset, bytes(data))
        for offset, data in query.order_by("offset").values_list("offset", "data")[:count]
    ]


def stream(job_id: int) -> Iterator[bytes]:
    """The whole stored log as it is now (to its present end), a batch of chunks at a time."""
    end, after = size(job_id), -1
    while batch := batches(job_id, after, end):
        yield b"".join(data for _, data in batch)
        after = batch[-1][0]


async def astream(job_id: int) -> AsyncIterator[bytes]:
    """`stream` for an ASGI server, which would otherwise read a synchronous stream whole into memory."""
    end, after = await sync_to_async(size)(job_id), -1
    while batch := await sync_to_async(batches)(job_id, after, end):
        yield b"".join(data for _, data in batch)
        after = batch[-1][0]
