"""Which processes on a GPU are gpuq's own: the running jobs of this node and their descendants."""

import os
from collections.abc import Iterable
from pathlib import Path

_MAX_ANCESTORS = 64


def _parent(pid: int) -> int | None:
    """The parent pid from /proc (field 4 of /proc/PID/stat), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its closing ')'.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[1]) if len(fields) > 1 else None


def _belongs(pid: int, leaders: set[int]) -> bool:
    """A job runs as the leader of its own session and process group (start_new_session): a process is
    the job's when its group or session is the job's pid, or when the job is one of its ancestors (a
    child that made its own session)."""
    try:
        if os.getpgid(pid) in leaders or os.getsid(pid) in leaders:
            return True
    except (ProcessLookupError, PermissionError):
        return False  # gone, or not visible here (another pid namespace): not provably ours
    current: int | None = pid
    for _ in range(_MAX_ANCESTORS):
        if current is None or current <= 1:
            return False
        if current in leaders:
            return True
        current = _parent(current)
    return False


def job_leader_pids(node) -> set[int]:
    """Pids of this node's jobs whose process still runs (boot id, pid and start time all match, so a
    recycled pid of someone else never counts)."""
    from scheduling import procs
    from scheduling.models import Attempt
    from scheduling.states import HOLDS_GPUS

    rows = Attempt.objects.filter(
        node=node, ended_at__isnull=True, pid__isnull=False, job__status__in=HOLDS_GPUS
    ).values_list("pid", "pid_start_time", "boot_id")
    return {pid for pid, started, boot in rows if procs.is_same_process(pid, started, boot)}


def our_pids(node, candidates: Iterable[int]) -> set[int]:
    """Those of `candidates` (pids NVML reports on this node's GPUs) that belong to gpuq jobs."""
    candidates = set(candidates)
    if not candidates:
        return set()
    leaders = job_leader_pids(node)
    if not leaders:
        return set()
    return {pid for pid in candidates if _belongs(pid, leaders)}
