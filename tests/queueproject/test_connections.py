"""Database connections outlive a request, on either database (the tests themselves close theirs at once:
tests/conftest.py, so these ask a process with gpuq's own settings)."""

import pytest
from django.db import connection

from tests.queueproject.test_secret_key import GOOD_KEY, finish, gpuq_python

# What Django does as each request starts and ends (close_old_connections), then whether the connection
# is the same one.
KEEPS = (
    "import django; django.setup()\n"
    "from django.db import close_old_connections, connection\n"
    "connection.ensure_connection(); first = connection.connection\n"
    "close_old_connections(); close_old_connections()\n"
    "print(connection.connection is first)"
)


def test_a_request_keeps_its_sqlite_connection(tmp_path):
    """A new SQLite connection per request started with an empty page cache: each read of the queue parsed
    the whole table from the file again (most of a loaded web process's time), and Django registered its
    functions again."""
    assert finish(gpuq_python(KEEPS, data_dir=tmp_path))[:2] == (0, "True")


@pytest.mark.skipif(connection.vendor != "postgresql", reason="a PostgreSQL server: the tests' own")
def test_a_request_keeps_its_postgresql_connection(tmp_path):
    db = connection.settings_dict
    url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    code, out, err = finish(gpuq_python(KEEPS, data_dir=tmp_path, DATABASE_URL=url, SECRET_KEY=GOOD_KEY))
    assert (code, out) == (0, "True"), err
