"""Which Unix account a job runs as (GPUQ_RUN_AS), and the folders that account owns or must reach.

A node running as root switches each job to an unprivileged account: the owner's own (`user`, Slurm's
model), one fixed account (`account`), or by default (`auto`) GPUQ_RUN_AS_ACCOUNT (`nobody`). It never
runs a job as uid 0 unless GPUQ_RUN_JOBS_AS_ROOT_UNSAFE is on. A node that is not root cannot switch:
jobs share its account ("shared account"), which the deploy check warns about.
"""

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

AUTO, USER, ACCOUNT = "auto", "user", "account"
MODES = (AUTO, USER, ACCOUNT)


class RunAsError(Exception):
    """A job cannot run as the account it should: the message says why and what to change."""


@dataclass(frozen=True)
class Account:
    username: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    def popen_kwargs(self) -> dict:
        """subprocess.Popen arguments that start the child as this account (only root can switch)."""
        if os.geteuid() != 0:
            return {}
        return {"user": self.uid, "group": self.gid, "extra_groups": list(self.groups)}

    def environment(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.username, "LOGNAME": self.username}

    def __str__(self) -> str:
        return f"{self.username} (uid {self.uid})"


def lookup(name: str) -> Account:
    """The account named `name` on this machine; RunAsError if it has none."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        raise RunAsError(f"run-as: there is no Unix account {name!r} on this node") from None
    return _account(entry)


def _account(entry: pwd.struct_passwd) -> Account:
    groups = tuple(g for g in os.getgrouplist(entry.pw_name, entry.pw_gid) if g != entry.pw_gid)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir)


def server_account() -> Account:
    """The account this process runs as."""
    try:
        return _account(pwd.getpwuid(os.geteuid()))
    except KeyError:  # a uid without a passwd entry (containers)
        uid = os.geteuid()
        return Account(str(uid), uid, os.getegid(), (), os.environ.get("HOME", "/"))


def shared() -> bool:
    """True when jobs must run as this process's own account: only root can switch accounts."""
    return os.geteuid() != 0


def _refuse_root(account: Account) -> Account:
    if account.uid == 0 and not settings.GPUQ_RUN_JOBS_AS_ROOT_UNSAFE:
        raise RunAsError(
            f"run-as: refusing to run a job as {account} (root); choose another account "
            "(GPUQ_RUN_AS, GPUQ_RUN_AS_ACCOUNT) or set GPUQ_RUN_JOBS_AS_ROOT_UNSAFE=true"
        )
    return account


def _switchable(account: Account) -> Account:
    """A node that is not root can run jobs only as itself."""
    me = server_account()
    if shared() and account.uid != me.uid:
        raise RunAsError(
            f"run-as: this node runs as {me}, not root, so it cannot run jobs as {account}; "
            "start the node as root or use GPUQ_RUN_AS=auto"
        )
    return _refuse_root(account)


def fixed_account() -> Account | None:
    """The one account every job of this node runs as, or None when it depends on the owner (`user`).
    Raises RunAsError when the settings name an impossible account."""
    mode = settings.GPUQ_RUN_AS
    if mode not in MODES:
        raise RunAsError(f"run-as: GPUQ_RUN_AS={mode!r} is not one of {', '.join(MODES)}")
    if mode == USER:
        return None
    if mode == AUTO and shared():
        return server_account()
    return _switchable(lookup(settings.GPUQ_RUN_AS_ACCOUNT))


def job_account(owner) -> Account:
    """The account a job of `owner` runs as on this node; RunAsError (a reason for the job) if none."""
    if settings.GPUQ_RUN_AS != USER:
        return fixed_account()
    profile = getattr(owner, "profile", None)
    name = getattr(profile, "unix_username", "")
    if not name:
        raise RunAsError(
            f"run-as: user {owner.username} has no Unix account set (admin: Users → unix username)"
        )
    try:
        account = lookup(name)
    except RunAsError:
        raise RunAsError(
            f"run-as: user {owner.username}'s Unix account {name!r} does not exist on this node"
        ) from None
    return _switchable(account)


def describe() -> str:
    """One line for the node's start: which account its jobs run as, and what that means."""
    mode = settings.GPUQ_RUN_AS
    if mode == USER and not shared():
        return "jobs run as each owner's own Unix account (GPUQ_RUN_AS=user)"
    account = fixed_account() or server_account()
    if shared():
        return (
            f"jobs run as this node's own account {account} (not root, shared account): "
            "anyone who can submit can read this account's files"
        )
    unsafe = " UNSAFE: as root" if account.uid == 0 else ""
    return f"jobs run as {account} (GPUQ_RUN_AS={mode}){unsafe}"


# --- folders ---------------------------------------------------------------------------------------


def _owned(path: Path) -> bool:
    try:
        return path.stat().st_uid == os.geteuid()
    except OSError:
        return False


def prepare_roots() -> None:
    """The job and checkpoint roots are traversable but not listable (0711); the logs folder is the
    server's alone (0700). Modes are set only on folders this account owns (shared storage may not be)."""
    for root, mode in (
        (settings.GPUQ_JOBS_DIR, 0o711),
        (settings.GPUQ_CHECKPOINT_ROOT, 0o711),
        (settings.GPUQ_LOG_DIR, 0o700),
    ):
        # Folders made on the way (e.g. /var/lib/gpuq/<name>) let jobs through too: the umask is 077.
        for folder in [*reversed(root.parents), root]:
            if not folder.exists():
                folder.mkdir(exist_ok=True)
                folder.chmod(0o711 if folder != root else mode)
        if _owned(root):
            root.chmod(mode)


def check_reachable(path: Path, account: Account) -> None:
    """RunAsError unless `account` may traverse every folder from / down to `path` (mode bits only)."""
    if account.uid == 0:
        return
    gids = {account.gid, *account.groups}
    for folder in [*reversed(path.parents), path]:
        try:
            st = folder.stat()
        except OSError as error:
            raise RunAsError(f"run-as: cannot check {folder}: {error}") from None
        if st.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in gids:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            owner = _name(pwd.getpwuid, st.st_uid)
            group = _name(grp.getgrgid, st.st_gid)
            raise RunAsError(
                f"run-as: jobs run as {account}, who cannot reach {path}: {folder} is mode "
                f"{stat.S_IMODE(st.st_mode):04o} ({owner}:{group}); let them through "
                f"(chmod o+x {folder}) or set GPUQ_JOBS_DIR / GPUQ_CHECKPOINT_ROOT to folders they can reach"
            )


def _name(getter, ident: int) -> str:
    try:
        return getter(ident)[0]
    except KeyError:
        return str(ident)


def prepare_job_folder(path: Path, account: Account) -> None:
    """A folder of the job's own (its working folder, its checkpoints): owned by its account, 0700."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.geteuid() == 0:
        # The parents are the server's (0711), so `path` cannot be a link the job planted.
        os.chown(path, account.uid, account.gid)
    if _owned(path) or os.geteuid() == 0:
        path.chmod(0o700)


def hand_over(path: Path, account: Account) -> None:
    """A file the server wrote for the job (a batch manifest): the job's to read and write."""
    if os.geteuid() == 0:
        os.chown(path, account.uid, account.gid, follow_symlinks=False)


def read_job_file(path: Path, account: Account, limit: int = 1 << 20) -> bytes | None:
    """Read a file the job wrote in its folder (progress, batch result), never following a link the job
    planted and, when it runs as another account, only a regular file that account owns."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or (os.geteuid() == 0 and st.st_uid != account.uid):
            return None
        return handle.read(limit)
