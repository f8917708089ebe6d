"""After-commit side effects: ticks requested by status changes (the event-driven half of ticking)."""

import logging
import threading

from django.conf import settings
from django.db import transaction

log = logging.getLogger("gpuq.events")
_local = threading.local()


def ticks_enabled() -> bool:
    return getattr(settings, "GPUQ_EVENT_TICKS", True)


def request_tick() -> None:
    """Run one tick after the current transaction commits; several requests in one commit give one tick.

    The tick runs inline in the process that made the change (web request, executor, node loop), so a
    job submitted while a GPU is free is dispatched before the submit call returns. Requests made while
    a tick is applying its own plan are dropped: that tick already sees the state it is changing.
    """
    if not ticks_enabled() or getattr(_local, "ticking", False):
        return
    connection = transaction.get_connection()
    # A rolled-back transaction drops its callbacks, so a pending request is one still in this list.
    if any(entry[1] is _run_requested_tick for entry in connection.run_on_commit):
        return
    transaction.on_commit(_run_requested_tick)


def _run_requested_tick() -> None:
    from scheduling.tick import tick

    try:
        tick()
    except Exception:  # the periodic tick will retry; never fail the caller's committed work
        log.exception("event-driven tick failed")


class ticking:
    """Context manager marking this thread as inside a tick."""

    def __enter__(self):
        _local.ticking = True

    def __exit__(self, *exc):
        _local.ticking = False
