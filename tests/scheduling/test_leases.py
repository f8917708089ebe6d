"""Lease margins: derived from the settings, and a configuration that allows an overlap is refused."""

import subprocess
import sys

import pytest
from django.conf import settings

from scheduling import leases
from tests.conftest import child_env, wait_for


@pytest.mark.parametrize(
    ("heartbeat", "lease", "grace", "margin", "refused"),
    [
        (2, 20, 10, 5, None),
        (0.2, 2, 2, 1.5, None),
        (2, 20, 10, 1, "GPUQ_LEASE_MARGIN_SECONDS"),  # gone by 31 s, taken over at 31 s: overlap
        (2, 20, 10, 0, "GPUQ_LEASE_MARGIN_SECONDS"),
        (2, 3, 10, 5, "GPUQ_LEASE_SECONDS"),  # a lease shorter than two heartbeats
    ],
)
def test_margins_are_checked(heartbeat, lease, grace, margin, refused):
    if refused:
        with pytest.raises(leases.OverlapError, match=refused):
            leases.check(heartbeat=heartbeat, lease=lease, grace=grace, margin=margin)
        return
    margins = leases.check(heartbeat=heartbeat, lease=lease, grace=grace, margin=margin)
    assert margins.fence_after == lease
    assert margins.fence_after + grace < margins.gone_by < margins.reap_after == lease + grace + margin


def test_a_configuration_that_allows_an_overlap_is_refused_at_start(db):
    env = child_env(GPUQ_LEASE_SECONDS="20", GPUQ_KILL_GRACE_SECONDS="10", GPUQ_LEASE_MARGIN_SECONDS="0.5")
    done = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "check"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "GPUQ_LEASE_MARGIN_SECONDS (0.5) must exceed 1 s" in done.stderr


def test_a_fence_that_wakes_late_gives_only_the_grace_left_before_the_take_over(settings):
    """A machine frozen whole (SIGSTOP, a suspended VM) past its lease wakes with its job alive: the fence
    must not give it a whole grace again, or the job would run past `L + G` (and beside its re-run after
    `L + G + M`). Here the freeze used up the lease and the grace: the job is SIGKILLed at once, though it
    ignores SIGTERM and the grace is ten minutes."""
    from scheduling import executor, procs

    settings.GPUQ_KILL_GRACE_SECONDS = 600
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ready', flush=True); time.sleep(900)"
    job = subprocess.Popen(
        [sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE, text=True
    )
    assert job.stdout.readline() == "ready\n"  # SIGTERM is ignored from now on
    try:
        fence = executor.Fence(1, job.pid, job.poll, fence_after=2)
        fence.last_contact -= 2 + 600 + 1  # its last heartbeat, before the freeze
        fence.start()
        wait_for(lambda: job.poll() is not None, timeout=60, message="the job to be killed")
        assert job.returncode == -9 and fence.fenced
        fence.join(timeout=60)
    finally:
        if job.poll() is None:
            procs.signal_group(job.pid, 9)
            job.wait()
