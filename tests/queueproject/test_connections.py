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


# A kept SQLite connection, its database file moved aside (a folder takes its name, as in
# tests/e2e/test_database_away.py), then back.
REPLACED = (
    "import django, os; django.setup()\n"
    "from django.db import OperationalError, close_old_connections, connection\n"
    "from django.contrib.auth.models import User\n"
    "from django.core.management import call_command\n"
    "call_command('migrate', verbosity=0)\n"
    "close_old_connections(); User.objects.count(); first = connection.connection\n"
    "path = connection.settings_dict['NAME']\n"
    "os.rename(path, path + '.away'); os.mkdir(path)\n"
    "close_old_connections()\n"  # a request starts
    "try:\n"
    "    User.objects.create(username='written-while-away'); print('written')\n"
    "except OperationalError:\n"
    "    print('unavailable')\n"
    "close_old_connections(); os.rmdir(path); os.rename(path + '.away', path)\n"
    "close_old_connections()\n"
    "print(User.objects.filter(username='written-while-away').count(), connection.connection is first)"
)


def test_a_kept_sqlite_connection_is_given_up_when_its_database_file_is_replaced(tmp_path):
    """A kept connection writes into the file it opened, whatever now has its name: the web process
    answered 201 for a job written into a database file moved aside (or replaced by a restore: then lost),
    where it must answer that the database is unavailable (queueproject/sqlite3/base.py)."""
    code, out, err = finish(gpuq_python(REPLACED, data_dir=tmp_path))
    assert (code, out.split("\n")) == (0, ["unavailable", "0 False"]), err


# The database file moved aside while another connection (another process's) keeps its WAL file open.
MOVED = (
    "import django, os, sqlite3; django.setup()\n"
    "from django.db import OperationalError, close_old_connections, connection\n"
    "from django.contrib.auth.models import User\n"
    "from django.core.management import call_command\n"
    "call_command('migrate', verbosity=0)\n"
    "path = connection.settings_dict['NAME']\n"
    "other = sqlite3.connect(path); other.execute('SELECT count(*) FROM auth_user').fetchone()\n"
    "User.objects.create(username='before')\n"
    "connection.close(); os.rename(path, path + '.away')\n"
    "try:\n"
    "    print(User.objects.count())\n"
    "except OperationalError as error:\n"
    "    print('unavailable:', 'its WAL file' in str(error))\n"
    "print('created' if os.path.exists(path) else 'not created', os.path.exists(path + '-wal'))\n"
    "close_old_connections(); os.rename(path + '.away', path)\n"
    "print(User.objects.filter(username='before').count())"
)


def test_a_connection_never_makes_a_new_database_where_the_file_went_away(tmp_path):
    """SQLite opening a missing database file makes a new, empty one, and reads the old file's WAL (still
    there, another connection holds it) into it: the web's ticker once read half a database that way in
    tests/e2e/test_database_away.py. gpuq's backend refuses to open it, names why, and creates nothing."""
    code, out, err = finish(gpuq_python(MOVED, data_dir=tmp_path))
    assert (code, out.split("\n")) == (0, ["unavailable: True", "not created True", "1"]), err
