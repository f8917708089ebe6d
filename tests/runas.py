"""For run-as tests: Unix accounts made for the tests, and a probe job that reports, in its log, which
account it runs as and what it can read."""

import json
import os
import pwd
import subprocess

import pytest

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="switching accounts needs root (CI runs as root)")

ALICE, BOB = "gpuqt-alice", "gpuqt-bob"

# argv[1]: JSON {label: path} of files to try to read; argv[2]: {label: path} of folders to try to list.
PROBE = r"""
import json, os, sys

def attempt(path, listing=False):
    try:
        os.listdir(path) if listing else open(path, "rb").read(1)
        return "read"
    except PermissionError:
        return "denied"
    except FileNotFoundError:
        return "missing"
    except OSError as error:
        return f"error {error.errno}"

def owner(path):
    st = os.stat(path)
    return [st.st_uid, oct(st.st_mode & 0o777)]

environs, pid = {}, os.getppid()
while pid > 1:  # every ancestor: the executor, the node, ... (each holds the server's environment)
    environs[pid] = attempt(f"/proc/{pid}/environ")
    pid = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
open("mine.txt", "w").write("mine")
report = {
    "uid": os.getuid(), "euid": os.geteuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
    "env": {k: os.environ.get(k) for k in ("HOME", "USER", "LOGNAME")},
    "cwd": owner("."), "checkpoints": owner(os.environ["GPUQ_CHECKPOINT_DIR"]),
    "environs": environs,
    "files": {k: attempt(v) for k, v in json.loads(sys.argv[1]).items()},
    "folders": {k: attempt(v, listing=True) for k, v in json.loads(sys.argv[2]).items()},
}
print("PROBE " + json.dumps(report), flush=True)
"""


def probe_argv(python: str, files: dict | None = None, folders: dict | None = None) -> list[str]:
    return [python, "-c", PROBE, json.dumps({k: str(v) for k, v in (files or {}).items()}),
            json.dumps({k: str(v) for k, v in (folders or {}).items()})]  # fmt: skip


def probe_report(log: str) -> dict:
    lines = [line for line in log.splitlines() if line.startswith("PROBE ")]
    assert lines, log
    return json.loads(lines[-1][len("PROBE ") :])


def ensure_account(name: str) -> pwd.struct_passwd:
    """A system account for the tests (kept: idempotent, and safe when tests race to make it)."""
    try:
        return pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            capture_output=True,
        )
        return pwd.getpwnam(name)  # made by us or by a test that raced us
