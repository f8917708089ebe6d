"""Identify and stop processes safely: by boot id, pid and start time together, never by pid alone."""

import ctypes
import os
import signal
import time
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def boot_id() -> str:
    """This machine's boot id (GPUQ_BOOT_ID_OVERRIDE, test only, makes a process look like another machine)."""
    from django.conf import settings

    if getattr(settings, "GPUQ_BOOT_ID_OVERRIDE", ""):
        return settings.GPUQ_BOOT_ID_OVERRIDE
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or ''."""
    fields = _stat_fields(str(pid))
    return fields[19] if fields else ""


def is_same_process(pid: int | None, started: str, boot: str) -> bool:
    """True when `pid` still names the very process recorded as (boot, pid, start time)."""
    if not pid or not started or boot != boot_id():
        return False
    return start_time(pid) == started


def _stat_fields(pid: str) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing ')'.
    return stat[stat.rindex(")") + 2 :].split()


def group_alive(pgid: int) -> bool:
    """True while any process of the group is alive. Zombies do not count: they run nothing and hold
    nothing, and an orphan's zombie waits on PID 1 (which in containers may never reap it)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not Path("/proc/self/stat").exists():
        return True
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(entry)
            # fields[0] is the state (field 3), fields[2] the process group (field 5).
            if fields and fields[2] == str(pgid) and fields[0] not in ("Z", "X"):
                return True
    return False


def signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def stop_group(pgid: int, grace: float, *, poll=None) -> None:
    """SIGTERM the process group, wait up to `grace` seconds, then SIGKILL whatever is left.

    `poll` (optional) reaps our own child so a zombie leader does not look alive.
    """
    signal_group(pgid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if poll is not None:
            poll()
        if not group_alive(pgid):
            return
        time.sleep(0.05)
    signal_group(pgid, signal.SIGKILL)


def die_with_parent() -> None:
    """In a child before exec: receive SIGTERM when the parent dies (Linux only; no-op elsewhere)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except OSError:
        pass
