"""Read a job's log from the chunks its nodes shipped to the database (scheduling.logship), without
loading the whole log: the tail reads chunks backwards, a follow reads forward from a byte offset."""

import codecs

from scheduling.models import LogChunk

CHUNK_BYTES = 64 * 1024  # the most a stored chunk holds (scheduling.logship writes them)
_TAIL_BATCH = 4  # chunks per query when reading backwards


def size(job_id: int) -> int:
    """Bytes of the job's log so far (its stored end, counting bytes no longer kept)."""
    last = LogChunk.objects.filter(job_id=job_id).order_by("-offset").values("offset", "size").first()
    return last["offset"] + last["size"] if last else 0


def tail(job_id: int, lines: int) -> tuple[list[str], bool]:
    """The last `lines` lines of the log and whether earlier lines exist. No log yet: no lines."""
    data, before, first = b"", None, None
    while data.count(b"\n") <= lines:
        query = LogChunk.objects.filter(job_id=job_id)
        if before is not None:
            query = query.filter(offset__lt=before)
        batch = list(query.order_by("-offset").values_list("offset", "data")[:_TAIL_BATCH])
        for offset, chunk in batch:
            data = bytes(chunk) + data
            first = offset
        if len(batch) < _TAIL_BATCH:
            before = None
            break
        before = batch[-1][0]
    text = data.decode("utf-8", errors="replace").splitlines()
    earlier = before is not None or bool(first)  # more chunks, or a head no longer kept
    return text[-lines:], earlier or len(text) > lines


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
    data, expected = b"", first["offset"]
    rows = chunks.filter(offset__gte=first["offset"]).order_by("offset").values_list("offset", "data")
    for position, chunk in rows[: limit // CHUNK_BYTES + 2]:
        if position != expected or len(data) >= limit:
            break  # a gap (bytes not kept) ends this read; the next one starts after it
        data += bytes(chunk)
        expected = position + len(chunk)
    data = data[offset - first["offset"] :]
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data, final=final)
    held_back = len(decoder.getstate()[0])
    return text, offset, offset + len(data) - held_back, end
