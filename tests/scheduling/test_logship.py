"""Logs shipped to the database: the executor stores a job's output as it runs, the tail and the follow
read it back in pieces, a stale attempt cannot write over the current one, only the last
GPUQ_LOG_DB_MAX_BYTES are kept, output written while the database is away is shipped when it is back, and
the chunks go with their job."""

import os

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext

from scheduling import logs
from scheduling.logship import CHUNK_BYTES, LogShipper
from scheduling.models import Job, LogChunk
from scheduling.states import Status
from tests.conftest import wait_for
from tests.factories import make_job
from tests.proxy import Proxy
from tests.scheduling.helpers import PY, dispatch, run_in_thread


def lines(first, last):
    return "".join(f"line {i:06d}\n" for i in range(first, last))


def stored(job) -> bytes:
    text, _, _, _ = logs.read_from(job.pk, 0, final=True, limit=1 << 30)
    return text.encode()


@pytest.mark.django_db(transaction=True)
def test_the_executor_ships_the_output_while_the_job_runs_and_all_of_it_by_the_end(alice, node, tmp_path):
    go = tmp_path / "go"
    code = f"import os, time\nprint('started', flush=True)\nwhile not os.path.exists({str(go)!r}): time.sleep(0.05)\nprint('done')"
    job = dispatch(make_job(alice, argv=[PY, "-c", code]))
    thread, result = run_in_thread(job)
    # Read from the database while it runs: the first line arrives with a heartbeat.
    wait_for(lambda: "started" in "".join(logs.tail(job.pk, 10)[0]), timeout=20, message="live output")
    assert Job.objects.get(pk=job.pk).status == Status.RUNNING
    go.touch()
    thread.join(timeout=60)
    assert result == ["completed"]
    job.refresh_from_db()
    # The stored log is the node's file, byte for byte, the last line included.
    assert stored(job) == open(job.log_path, "rb").read()
    assert logs.tail(job.pk, 2)[0] == ["done", "=== gpuq: completed (exit code 0) ==="]


@pytest.mark.django_db
def test_the_tail_reads_only_the_last_chunks(alice, tmp_path):
    job = make_job(alice)
    path = tmp_path / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text(lines(0, 100_000))  # 1.2 MB: 19 chunks
    shipper.flush()
    assert LogChunk.objects.filter(job=job).count() > 10
    assert max(LogChunk.objects.filter(job=job).values_list("size", flat=True)) == CHUNK_BYTES
    with CaptureQueriesContext(connection) as queries:
        tail, truncated = logs.tail(job.pk, 3)
    assert tail == ["line 099997", "line 099998", "line 099999"] and truncated
    assert len(queries) == 1 and "LIMIT 4" in queries[0]["sql"].upper()
    assert stored(job) == path.read_bytes()


@pytest.mark.django_db
def test_following_across_chunks_and_attempts_returns_each_byte_once(alice, tmp_path):
    job = make_job(alice)
    first_node, second_node = tmp_path / "a.log", tmp_path / "b.log"  # two machines, two files
    first = LogShipper(first_node, [job.pk], attempt=1)
    first_node.write_text(lines(0, 10_000))
    first.flush()
    second = LogShipper(second_node, [job.pk], attempt=2)
    second_node.write_text(lines(10_000, 20_000))
    second.flush()
    text, offset = "", 0
    while True:
        piece, start, offset, size = logs.read_from(job.pk, offset, limit=100_000)
        text += piece
        if offset == size:
            break
    assert text == lines(0, 20_000)
    assert list(LogChunk.objects.filter(job=job).values_list("attempt", flat=True).distinct()) == [1, 2]


@pytest.mark.django_db
def test_a_stale_attempt_cannot_write_into_the_log_of_the_next(alice, tmp_path):
    job = make_job(alice)
    old_file, new_file = tmp_path / "old.log", tmp_path / "new.log"
    old = LogShipper(old_file, [job.pk], attempt=1)
    old_file.write_text("old 1\n")
    old.ship()
    new = LogShipper(new_file, [job.pk], attempt=2)
    new_file.write_text("new 1\n")
    new.ship()
    with open(old_file, "a") as handle:
        handle.write("old 2, written after the job moved on\n")
    old.ship()
    with open(new_file, "a") as handle:
        handle.write("new 2\n")
    new.ship()
    assert stored(job) == b"old 1\nnew 1\nnew 2\n"


@pytest.mark.django_db
def test_only_the_last_bytes_are_kept_and_a_follow_skips_to_them(alice, tmp_path, settings):
    settings.GPUQ_LOG_DB_MAX_BYTES = 3 * CHUNK_BYTES
    job = make_job(alice)
    path = tmp_path / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text(lines(0, 100_000))
    shipper.flush()
    kept = sum(LogChunk.objects.filter(job=job).values_list("size", flat=True))
    assert settings.GPUQ_LOG_DB_MAX_BYTES - CHUNK_BYTES < kept <= settings.GPUQ_LOG_DB_MAX_BYTES
    assert logs.size(job.pk) == path.stat().st_size
    text, start, _, _ = logs.read_from(job.pk, 0)
    assert start == path.stat().st_size - kept
    assert text.encode() == path.read_bytes()[start:]
    assert logs.tail(job.pk, 1) == (["line 099999"], True)


@pytest.mark.django_db(transaction=True)
def test_output_written_while_the_database_is_away_is_shipped_when_it_is_back(alice, tmp_path):
    job = make_job(alice)
    path = tmp_path / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text("before\n")
    shipper.ship()
    saved = dict(connection.settings_dict)
    connection.close()
    # The database goes away: a server that refuses connections, or a SQLite file that cannot be opened.
    if connection.vendor == "sqlite":
        connection.settings_dict["NAME"] = str(tmp_path)  # a folder
    else:
        connection.settings_dict["PORT"] = "1"
    try:
        with open(path, "a") as handle:
            handle.write("during\n")
        with pytest.raises(DatabaseError):
            shipper.ship()
    finally:
        connection.close()
        connection.settings_dict.update(saved)
    with open(path, "a") as handle:
        handle.write("after\n")
    shipper.ship()
    assert stored(job) == b"before\nduring\nafter\n"


@pytest.mark.django_db
def test_chunks_go_with_their_job(alice, tmp_path):
    job = make_job(alice)
    path = tmp_path / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text("bye\n")
    shipper.flush()
    assert LogChunk.objects.filter(job=job).exists()
    job.delete()
    assert not LogChunk.objects.exists()
    assert os.path.exists(path)  # the node's own file is the node's to keep


@pytest.mark.django_db(transaction=True)
def test_a_write_whose_commit_answer_was_lost_is_not_stored_twice(alice, tmp_path):
    """The database commits a chunk and the link drops before the answer arrives (PostgreSQL: a proxy cuts
    right after the COMMIT reaches the server): the shipper sees an error, ships the same bytes again,
    recognises its own chunk and stores nothing twice, for a grown chunk and for a new one alike."""
    job = make_job(alice)
    path = tmp_path / "job.log"
    shipper = LogShipper(path, [job.pk], attempt=1)
    path.write_text("one\n")
    shipper.ship()
    if connection.vendor == "postgresql":  # SQLite has no link whose answer can be lost
        saved = dict(connection.settings_dict)
        proxy = Proxy(saved["HOST"] or "localhost", int(saved["PORT"] or 5432))
        connection.close()
        connection.settings_dict.update(HOST="127.0.0.1", PORT=str(proxy.port))
        try:
            fill = "x" * (CHUNK_BYTES - len("one\ntwo\n") - 1) + "\n"
            for more in ("two\n", fill, "three\n"):  # grow the open chunk, fill it, then a new chunk
                with open(path, "a") as handle:
                    handle.write(more)
                proxy.cut_after, proxy.lose_answer = b"COMMIT", True
                with pytest.raises(DatabaseError):
                    shipper.ship()
                connection.close()
                proxy.restore()
                shipper.ship()
        finally:
            connection.close()
            connection.settings_dict.update(saved)
            proxy.close()
        assert list(LogChunk.objects.filter(job=job).order_by("offset").values_list("size", flat=True)) == [
            CHUNK_BYTES,
            len("three\n"),
        ]
    assert stored(job) == path.read_bytes()
