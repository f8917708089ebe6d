"""Keep the server's files and memory to the server's account: a private umask, undumpable processes,
and the modes of files an older install left readable tightened at start."""

import ctypes
import os
import stat
from pathlib import Path

_PR_SET_DUMPABLE = 4


def make_undumpable() -> bool:
    """prctl(PR_SET_DUMPABLE, 0): a process of the same uid (a job in the shared-account mode) can no
    longer ptrace this one or read its /proc/PID/environ, mem or fds. Kept across fork, reset by exec.
    Returns False where the call is not available (not Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return False
    return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def harden_process() -> None:
    """Called first by every gpuq process (manage.py, the ASGI entry point): files it creates (the SQLite
    database and its WAL, logs, secrets, folders) are its account's alone, and its memory is closed."""
    os.umask(0o077)
    make_undumpable()


def tighten(path: Path, mode: int) -> None:
    """Drop the bits of `path` beyond `mode` if this account owns it (never follows a link)."""
    try:
        st = path.lstat()
    except OSError:
        return
    if st.st_uid == os.geteuid() and not stat.S_ISLNK(st.st_mode) and stat.S_IMODE(st.st_mode) & ~mode:
        path.chmod(stat.S_IMODE(st.st_mode) & mode)


def tighten_data_modes() -> None:
    """An older install created the database, its WAL, the logs and the secret files world-readable."""
    from django.conf import settings

    sqlite = Path(settings.SQLITE_PATH)
    for path in (sqlite, Path(f"{sqlite}-wal"), Path(f"{sqlite}-shm"), Path(f"{sqlite}-journal")):
        tighten(path, 0o600)
    for name in ("admin-token", "admin-password", "secret-key"):
        tighten(settings.DATA_DIR / name, 0o600)
    logs = settings.GPUQ_LOG_DIR
    tighten(logs, 0o700)
    try:
        entries = list(os.scandir(logs))
    except OSError:
        return
    for entry in entries:
        tighten(Path(entry.path), 0o600 if entry.is_file(follow_symlinks=False) else 0o700)
