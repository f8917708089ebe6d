"""Every gpuq process keeps its files and memory to its own account: a private umask, undumpable (so a
job of the same account cannot read its environment), and an older install's open files closed."""

import os
import subprocess
import sys

import pytest
from django.conf import settings

from queueproject.hardening import tighten_data_modes
from tests.conftest import JOB_PYTHON
from tests.runas import ALICE, ensure_account

# Holds a secret in its environment, optionally makes itself undumpable with gpuq's helper, then waits.
HOLDER = (
    "import sys, time; sys.path.insert(0, sys.argv[1]); "
    "from queueproject.hardening import make_undumpable; "
    "assert sys.argv[2] == 'open' or make_undumpable(); "
    "print('ready', flush=True); time.sleep(600)"
)
READER = (
    "import sys\n"
    "try:\n    print('read' if b'SECRET_KEY=' in open(sys.argv[1], 'rb').read() else 'absent')\n"
    "except PermissionError:\n    print('denied')"
)


def as_test_account() -> dict:
    """Run both processes as one unprivileged account (as root), or as ourselves (not root)."""
    if os.geteuid() != 0:
        return {}
    account = ensure_account(ALICE)
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


@pytest.mark.parametrize("state", ["undumpable", "open"])
def test_a_process_of_the_same_account_cannot_read_an_undumpable_processs_environment(state):
    holder = subprocess.Popen(
        [JOB_PYTHON, "-c", HOLDER, str(settings.BASE_DIR), state],
        env={"SECRET_KEY": "server-secret", "PATH": os.environ["PATH"]},
        stdout=subprocess.PIPE,
        text=True,
        **as_test_account(),
    )
    try:
        assert holder.stdout.readline() == "ready\n"
        reader = subprocess.run(
            [JOB_PYTHON, "-c", READER, f"/proc/{holder.pid}/environ"],
            capture_output=True,
            text=True,
            timeout=60,
            **as_test_account(),
        )
        assert reader.stdout == ("denied\n" if state == "undumpable" else "read\n"), reader.stderr
    finally:
        holder.kill()
        holder.wait()


def test_every_manage_py_process_is_undumpable_and_creates_files_for_its_account_only(tmp_path):
    code = (
        "import ctypes, os; "
        "print(ctypes.CDLL('libc.so.6').prctl(3, 0, 0, 0, 0), oct(os.umask(0o077)))"  # PR_GET_DUMPABLE
    )
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", code],
        env={**os.environ, "GPUQ_DATA_DIR": str(tmp_path / "data")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.stdout.splitlines()[-1].split() == ["0", "0o77"], done.stdout + done.stderr
    assert oct((tmp_path / "data").stat().st_mode & 0o777) == "0o711"  # made by settings: jobs cross it


def test_an_older_installs_world_readable_files_are_closed_at_start(settings, tmp_path):
    settings.SQLITE_PATH = tmp_path / "gpuq.sqlite3"
    old = [tmp_path / n for n in ("gpuq.sqlite3", "gpuq.sqlite3-wal", "admin-token", "secret-key")]
    logs = settings.GPUQ_LOG_DIR
    logs.mkdir(mode=0o755)
    logs.chmod(0o755)
    old.append(logs / "job-1.log")
    for path in old:
        path.write_text("x")
        path.chmod(0o644)
    tighten_data_modes()
    assert [oct(p.stat().st_mode & 0o777) for p in old] == ["0o600"] * len(old)
    assert oct(logs.stat().st_mode & 0o777) == "0o700"
