"""A real gpuq_web whose database goes away or cannot lock in time: the API answers a JSON 503 with Retry-After and pages a plain
503, then it serves again when the database is back; a submit retried with its Idempotency-Key after the
client saw an error creates one job."""

import contextlib
import ctypes
import os
from pathlib import Path

import httpx
import pytest
from django.db import connection, transaction

from accounts.models import ApiToken
from scheduling.models import Job
from tests.e2e.conftest import login
from tests.proxy import Proxy

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]

AT_FDCWD, RENAME_EXCHANGE = -100, 2  # <fcntl.h>, <linux/fs.h>


class Database:
    """The test database as a gpuq process reaches it, and a way to make it go away and come back.
    PostgreSQL: through a TCP proxy that is cut (connections closed, new ones refused). SQLite: a folder
    and the file swap names (every new connection fails to open it), and swap back."""

    def __init__(self):
        db = connection.settings_dict
        if connection.vendor == "sqlite":
            self.path = Path(db["NAME"]).resolve()
            self.url = f"sqlite:///{self.path}"
            self.proxy = None
        else:
            self.proxy = Proxy(db["HOST"] or "localhost", int(db["PORT"] or 5432))
            self.url = (
                f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@127.0.0.1:{self.proxy.port}/{db['NAME']}"
            )

    @contextlib.contextmanager
    def away(self):
        if self.proxy:
            self.proxy.cut()
        else:
            folder = self.path.with_suffix(".away")
            folder.mkdir()
            exchange(self.path, folder)
        try:
            yield
        finally:
            if self.proxy:
                self.proxy.restore()
            else:
                exchange(self.path, folder)
                folder.rmdir()

    def close(self):
        if self.proxy:
            self.proxy.close()


def exchange(a: Path, b: Path) -> None:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE), so that no process ever finds the
    database's name free: a SQLite connection opened then would make a new, empty database there, beside
    the real one's WAL file (two renames left that gap, and under load the web's ticker fell into it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) != 0:
        error = ctypes.get_errno()
        raise OSError(error, os.strerror(error), str(a))


@pytest.fixture
def database():
    db = Database()
    yield db
    db.close()


@pytest.fixture
def web_on(start_web):
    """Start gpuq_web with a given DATABASE_URL (and more environment); stopped afterwards."""

    def start(database_url: str, **env) -> str:
        return start_web(DATABASE_URL=database_url, GPUQ_LOG_LEVEL="ERROR", **env)

    return start


def submit(api: httpx.Client, **headers) -> httpx.Response:
    return api.post("/api/v1/jobs", json={"argv": ["true"], "name": "blip"}, headers=headers)


def test_the_api_answers_json_503_with_retry_after_while_the_database_is_away(root, node, database, web_on):
    base = web_on(database.url, GPUQ_RETRY_AFTER_SECONDS=7)
    _, key = ApiToken.issue(user=root)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Token {key}"}, timeout=30)
    page = login(base, "root", "pw-root-long")
    assert submit(api).status_code == 201

    with database.away():
        for response in (submit(api), api.get("/api/v1/jobs"), api.get("/api/v1/queue")):
            assert response.status_code == 503, response.text[:300]
            assert response.headers["content-type"] == "application/json"
            assert response.headers["retry-after"] == "7"
            body = response.json()
            assert "database is unavailable" in body["detail"] and body["retry_after"] == 7
        queue_page = page.get("/")
        assert queue_page.status_code == 503 and queue_page.headers["retry-after"] == "7"
        assert "text/html" in queue_page.headers["content-type"]
        assert "Service unavailable" in queue_page.text

    again = submit(api)
    assert again.status_code == 201, again.text[:500]
    assert page.get("/").status_code == 200
    assert Job.objects.filter(name="blip").count() == 2


def test_a_write_that_waits_past_the_lock_timeout_is_a_503(root, node, database, web_on):
    """The database answers but a write cannot get its lock in time: SQLite's "database is locked" after
    its busy timeout, PostgreSQL's lock timeout. Both are a 503 with Retry-After, and the next try works."""
    base = web_on(database.url, GPUQ_SQLITE_TIMEOUT_SECONDS=0.5, PGOPTIONS="-c lock_timeout=500")
    _, key = ApiToken.issue(user=root)
    api = httpx.Client(base_url=base, headers={"Authorization": f"Token {key}"}, timeout=30)
    with transaction.atomic():  # SQLite: BEGIN IMMEDIATE takes the database's write lock
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE scheduling_job IN ACCESS EXCLUSIVE MODE")
        locked = submit(api)
    assert locked.status_code == 503, locked.text[:300]
    assert locked.headers["retry-after"] == "5" and locked.json()["retry_after"] == 5
    assert submit(api).status_code == 201


def test_a_submit_retried_after_the_commit_with_its_key_creates_one_job(root, node, database, web_on):
    """The server commits the job and the client sees an error instead of the reply: the reply is lost on
    the way (any database), or the database link drops right after the commit so the server answers 503
    (PostgreSQL: the proxy cuts once the server has answered the COMMIT). The client retries with the same
    Idempotency-Key and gets the job that exists."""
    base = web_on(database.url)
    front = Proxy("127.0.0.1", int(base.rsplit(":", 1)[1]))  # between the client and gpuq_web
    try:
        _, key = ApiToken.issue(user=root)
        api = httpx.Client(
            base_url=f"http://127.0.0.1:{front.port}", headers={"Authorization": f"Token {key}"}, timeout=30
        )
        front.drop_next_reply = True
        with pytest.raises(httpx.TransportError):
            submit(api, **{"Idempotency-Key": "lost-reply"})
        first = Job.objects.get(name="blip")  # the work was done
        retried = submit(api, **{"Idempotency-Key": "lost-reply"})
        assert retried.status_code == 200, retried.text
        assert retried.json()["id"] == first.pk and retried.headers["idempotent-replayed"] == "true"
        assert Job.objects.filter(name="blip").count() == 1

        if database.proxy is not None:
            # The submit's own COMMIT, not one of another thread of the web process (its ticker's).
            database.proxy.cut_after_prior, database.proxy.cut_after = (
                b'INSERT INTO "scheduling_job"',
                b"COMMIT",
            )
            dropped = submit(api, **{"Idempotency-Key": "dropped-after-commit"})
            assert dropped.status_code == 503, dropped.text
            database.proxy.restore()
            second = Job.objects.exclude(pk=first.pk).get(name="blip")  # committed before the drop
            retried = submit(api, **{"Idempotency-Key": "dropped-after-commit"})
            assert retried.status_code == 200 and retried.json()["id"] == second.pk, retried.text
            assert Job.objects.filter(name="blip").count() == 2
    finally:
        front.close()
