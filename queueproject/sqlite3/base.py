"""Django's SQLite backend, with a health check that notices when the database file was replaced.

gpuq keeps its database connections (CONN_MAX_AGE): a node's loops, its executors, the relay, the ticker and
the web process's request threads each hold one. An open SQLite connection reads and writes the file it
opened, whatever now has that name: a database moved aside (restored from a backup, or gone with its
disk) would keep taking writes no one will see again, and a web process would answer 201 for a job it
wrote into the old file. Django's SQLite backend reports every connection usable. This one is usable only
while the file at its path is still the file it opened (the same device and inode), and Django's health
check (CONN_HEALTH_CHECKS, at each request's and loop's first query) closes it otherwise: the next query
opens the path anew, or fails with the database unavailable (a 503 from the web). An in-memory database is
always usable.
"""

import os

from django.db.backends.sqlite3 import base


def _identity(path: str) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except OSError:
        return None
    return (found.st_dev, found.st_ino)


class DatabaseWrapper(base.DatabaseWrapper):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._opened = None  # (device, inode) of the file the open connection opened; None: in memory

    def get_new_connection(self, conn_params):
        connection = super().get_new_connection(conn_params)
        self._opened = None if self.is_in_memory_db() else _identity(self.settings_dict["NAME"])
        return connection

    def is_usable(self):
        return self._opened is None or _identity(self.settings_dict["NAME"]) == self._opened
