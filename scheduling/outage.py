"""Riding out a database outage in a long-running loop: back off between tries, log once per outage."""

import logging
import time

from django.db import DatabaseError, connection

# Backoff between tries while the database is away: doubling from FIRST, at most LAST seconds.
FIRST, LAST = 0.2, 5.0


class Outage:
    """The database state of one loop. `failed()` after an error returns how long to wait before the
    next try and logs only the first error of an outage; `recovered()` after a success logs the end of
    an outage and returns its length in seconds (0.0 when there was none)."""

    def __init__(self, what: str, log: logging.Logger, *, last: float = LAST):
        self.what, self.log, self.last = what, log, last
        self.since: float | None = None
        self.tries = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> float:
        if self.since is None:
            self.since = time.monotonic()
            self.log.warning("%s: database unreachable (%s); retrying with backoff", self.what, error)
        self.tries += 1
        return min(self.last, FIRST * 2 ** (self.tries - 1))

    def recovered(self) -> float:
        if self.since is None:
            return 0.0
        took = time.monotonic() - self.since
        self.log.warning("%s: database reachable again after %.1f s (%d tries)", self.what, took, self.tries)
        self.since, self.tries = None, 0
        return took


def drop_connection() -> None:
    """Forget this thread's database connection after an error, so the next query connects afresh."""
    try:
        connection.close()
    except DatabaseError:
        pass
