"""The log API over stored chunks: the tail by lines and by window, earlier parts, follow, search and
the streamed download, with the job's permissions; each read touches a few chunks whatever the size."""

import pytest

from scheduling import logs
from scheduling.models import LogChunk
from scheduling.states import Status
from tests.conftest import api_for
from tests.factories import make_job

CHUNK = logs.CHUNK_BYTES


def store(job, data: bytes, start: int = 0) -> None:
    """Store `data` as the node's shipper would: whole chunks from byte `start` (earlier ones dropped)."""
    LogChunk.objects.bulk_create(
        LogChunk(
            job=job, attempt=1, offset=start + at, size=len(data[at : at + CHUNK]), data=data[at : at + CHUNK]
        )
        for at in range(0, len(data), CHUNK)
    )


def numbered(count: int, first: int = 0) -> bytes:
    return "".join(f"line {i:06d} é\n" for i in range(first, first + count)).encode()  # 15 bytes a line


@pytest.fixture
def job(alice):
    return make_job(alice, status=Status.COMPLETED)


def test_the_tail_of_one_huge_line_reads_a_bounded_part_in_a_few_queries(
    alice, job, django_assert_max_num_queries
):
    store(job, b"x" * (8 * 1024 * 1024))  # 8 MiB with no newline: the old tail read all 128 chunks
    with django_assert_max_num_queries(12):
        body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?lines=10").json()
    assert body["truncated"] is True
    assert body["lines"] == ["x" * logs.TAIL_MAX_BYTES]


def test_the_window_at_the_end_starts_at_a_line_and_says_what_comes_before(alice, job):
    data = numbered(20000)  # 300,000 bytes, 5 chunks
    store(job, data)
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?bytes=1000").json()
    assert body["next_offset"] == body["size"] == len(data)
    assert body["kept_from"] == 0 and body["finished"] is True
    assert body["text"].startswith("line ") and body["text"].endswith("line 019999 é\n")
    assert len(body["text"].encode()) <= 1000
    assert data[body["offset"] :].decode() == body["text"]


def test_earlier_parts_join_up_to_the_whole_log(alice, job):
    data = numbered(10000)
    store(job, data)
    api, parts, before = api_for(alice), [], None
    while before != 0:
        query = f"bytes=40000&before={before}" if before is not None else "bytes=40000"
        body = api.get(f"/api/v1/jobs/{job.pk}/log?{query}").json()
        parts.insert(0, body["text"])
        before = body["offset"]
    assert "".join(parts) == data.decode()
    assert all(part.startswith("line ") for part in parts)


def test_a_window_never_cuts_a_character_and_a_huge_line_is_cut_at_a_character(alice, job):
    data = "é".encode() * 100_000  # one line of 200,000 bytes
    store(job, data)
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?bytes=1001&before=150001").json()
    assert set(body["text"]) == {"é"}
    assert body["next_offset"] == 150_000 and body["offset"] % 2 == 0


def test_a_window_of_a_log_whose_head_was_dropped_starts_where_it_is_kept(alice, job):
    store(job, numbered(10000)[2 * CHUNK :], start=2 * CHUNK)
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?bytes=1048576").json()
    assert body["kept_from"] == body["offset"] == 2 * CHUNK


def test_follow_with_after_is_the_same_as_offset(alice, job):
    store(job, numbered(100))
    api = api_for(alice)
    assert (
        api.get(f"/api/v1/jobs/{job.pk}/log?after=30").json()
        == api.get(f"/api/v1/jobs/{job.pk}/log?offset=30").json()
    )


@pytest.mark.parametrize(
    ("query", "field"),
    [("before=-1", "before"), ("bytes=0", "bytes"), ("bytes=2000000", "bytes"), ("after=x", "after")],
)
def test_bad_log_parameters_are_a_400_naming_them(alice, job, query, field):
    response = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log?{query}")
    assert response.status_code == 400 and field in response.json()


def test_search_pages_through_matches_with_their_offsets_and_lines(alice, job):
    data = numbered(20000)
    store(job, data)
    api, found, start = api_for(alice), [], 0
    while start is not None:
        body = api.get(f"/api/v1/jobs/{job.pk}/log/search?q=LINE 0123&limit=4&from={start}").json()
        found += body["matches"]
        start = body["next"]
    assert [m["text"] for m in found] == [f"line {i:06d} é" for i in range(12300, 12400)]
    first = found[0]
    assert data[first["offset"] :].startswith(b"line 012300") and first["line_offset"] == first["offset"]
    assert first["column"] == 0


def test_search_finds_a_match_across_two_chunks_and_in_a_huge_line(alice, job):
    data = b"a" * (CHUNK - 3) + b"needle" + b"b" * (3 * CHUNK)
    store(job, data)
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log/search?q=needle").json()
    [match] = body["matches"]
    assert match["offset"] == CHUNK - 3 and body["next"] is None
    assert match["text"][match["column"] : match["column"] + 6] == "needle"
    assert len(match["text"]) < 300  # the part around it, not the whole line


def test_search_reads_a_bounded_part_per_call(alice, job, monkeypatch):
    from scheduling import logsearch

    monkeypatch.setattr(logsearch, "SCAN_BYTES", 2 * CHUNK)
    store(job, b"z\n" * (4 * CHUNK) + b"needle\n")
    api, calls, start, found = api_for(alice), 0, 0, []
    while start is not None:
        body = api.get(f"/api/v1/jobs/{job.pk}/log/search?q=needle&from={start}").json()
        found += body["matches"]
        start, calls = body["next"], calls + 1
    assert calls >= 4 and [m["offset"] for m in found] == [8 * CHUNK]


@pytest.mark.parametrize(("query", "field"), [("", "q"), ("q=" + "x" * 201, "q"), ("q=x&limit=0", "limit")])
def test_bad_search_parameters_are_a_400_naming_them(alice, job, query, field):
    response = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log/search?{query}")
    assert response.status_code == 400 and field in response.json()


def test_the_download_streams_the_whole_log_as_a_file(alice, job):
    data = numbered(100_000)  # 1.5 MB: more than one batch of chunks
    store(job, data)
    response = api_for(alice).get(f"/api/v1/jobs/{job.pk}/log/download")
    assert response.status_code == 200 and response.streaming
    assert response["Content-Disposition"] == f'attachment; filename="job-{job.pk}.log"'
    assert response["X-Log-Offset"] == "0"
    parts = list(response.streaming_content)
    assert len(parts) > 1 and max(map(len, parts)) <= 16 * CHUNK
    assert b"".join(parts) == data


def test_the_async_download_stream_is_the_same_log(job):
    from asgiref.sync import async_to_sync

    data = numbered(50_000)
    store(job, data)

    async def read():
        return [part async for part in logs.astream(job.pk)]

    assert b"".join(async_to_sync(read)()) == data


@pytest.mark.parametrize("path", ["log?bytes=10", "log/search?q=line", "log/download"])
def test_someone_who_may_not_see_the_job_gets_a_404(bob, job, path):
    store(job, numbered(10))
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}/{path}").status_code == 404


def test_a_job_with_no_log_yet_has_an_empty_window_and_no_matches(alice, job):
    api = api_for(alice)
    window = api.get(f"/api/v1/jobs/{job.pk}/log?bytes=100").json()
    assert (window["text"], window["offset"], window["next_offset"], window["size"]) == ("", 0, 0, 0)
    assert api.get(f"/api/v1/jobs/{job.pk}/log/search?q=x").json()["matches"] == []
    assert b"".join(api.get(f"/api/v1/jobs/{job.pk}/log/download").streaming_content) == b""
