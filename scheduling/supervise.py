"""Start child processes in their own sessions and stop them within a bound (SIGTERM, wait, SIGKILL)."""

import os
import signal
import subprocess
import sys
import time

from django.conf import settings

from scheduling import procs


def manage_py(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Run `manage.py ARGS` as a child in a new session: a Ctrl-C in the terminal reaches only us, and we
    decide how each child stops. The child gets SIGTERM if we die."""
    return subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), *args],
        env={**os.environ, **(env or {})},
        start_new_session=True,
        preexec_fn=procs.die_with_parent,
    )


def stop(children: list[subprocess.Popen], grace: float) -> None:
    """SIGTERM every child's group, wait up to `grace` seconds for all, then SIGKILL the rest."""
    for child in children:
        if child.poll() is None:
            procs.signal_group(child.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
        procs.signal_group(child.pid, signal.SIGKILL)
        child.wait()


class StopFlag:
    """Set by SIGTERM or SIGINT; loops check it between steps."""

    def __init__(self):
        self.stopping = False
        signal.signal(signal.SIGTERM, self._set)
        signal.signal(signal.SIGINT, self._set)

    def _set(self, *_):
        self.stopping = True

    def sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self.stopping and time.monotonic() < deadline:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
