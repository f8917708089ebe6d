"""Lease arithmetic (pure): when an executor must stop its job, and when another node may take it over.

Times are seconds. An executor renews its attempt's lease every `heartbeat`. When it has not reached the
database for `lease` seconds (counted on its own monotonic clock from the moment it *sent* its last
successful heartbeat, so never later than the database's record of it) it stops its job: SIGTERM,
`grace` seconds, SIGKILL. The reaper may take an attempt over only when the database's clock says its
last heartbeat is older than `lease + grace + margin`: by then the process is gone, as long as the kill
itself takes less than KILL_SLACK. A configuration where that does not hold could run a job twice at
once, and is refused.
"""

from dataclasses import dataclass

# Time for a SIGKILL to take effect and for the executor's loop to notice an overdue lease.
KILL_SLACK = 1.0


class OverlapError(ValueError):
    """These settings would let a job's re-run start before its old process is gone."""


@dataclass(frozen=True)
class Margins:
    heartbeat: float
    lease: float
    grace: float
    margin: float

    @property
    def fence_after(self) -> float:
        """Seconds without database contact after which the executor stops its job."""
        return self.lease

    @property
    def gone_by(self) -> float:
        """Seconds after the last heartbeat by which a fenced job's processes are surely gone."""
        return self.fence_after + self.grace + KILL_SLACK

    @property
    def reap_after(self) -> float:
        """Seconds since the last heartbeat (database clock) after which the reaper may take over."""
        return self.lease + self.grace + self.margin


def check(*, heartbeat: float, lease: float, grace: float, margin: float) -> Margins:
    """The margins of these settings, or OverlapError naming the settings to change."""
    margins = Margins(heartbeat, lease, grace, margin)
    if lease < 2 * heartbeat:
        raise OverlapError(
            f"GPUQ_LEASE_SECONDS ({lease:g}) must be at least twice GPUQ_HEARTBEAT_SECONDS ({heartbeat:g}): "
            "a lease would expire between two heartbeats and healthy jobs would be stopped"
        )
    if not margins.gone_by < margins.reap_after:
        raise OverlapError(
            f"GPUQ_LEASE_MARGIN_SECONDS ({margin:g}) must exceed {KILL_SLACK:g} s: an executor stops its job "
            f"{lease:g} s after its last heartbeat and the job may take GPUQ_KILL_GRACE_SECONDS ({grace:g}) "
            f"plus {KILL_SLACK:g} s to go, so it could still run at {margins.gone_by:g} s when another node "
            f"takes it over at {margins.reap_after:g} s"
        )
    return margins


def current() -> Margins:
    """The margins of the running settings (checked at start; tests may change them)."""
    from django.conf import settings

    return Margins(
        settings.GPUQ_HEARTBEAT_SECONDS,
        settings.GPUQ_LEASE_SECONDS,
        settings.GPUQ_KILL_GRACE_SECONDS,
        settings.GPUQ_LEASE_MARGIN_SECONDS,
    )
