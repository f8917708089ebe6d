"""Why a job is not running yet: the one vocabulary of wait reasons (Slurm's squeue reasons, and ours).

Standard library only, so the pure planner uses it; `scheduling.models.WaitReason` (the model's choices,
the API's enum, the pages' labels) is built from it. A new reason is one line here.
"""

import enum


class Reason(enum.StrEnum):
    NONE = ""
    PRIORITY = "priority"
    RESOURCES = "resources"
    GLOBAL_LIMIT = "global_limit"
    USER_LIMIT = "user_limit"
    TEAM_LIMIT = "team_limit"
    QUOTA = "quota"
    OFF_PEAK = "off_peak"
    BEGIN_TIME = "begin_time"
    APPROVAL = "approval"
    DEPENDENCY = "dependency"
    CONFLICT = "conflict"
    SERIAL = "serial"
    PREEMPTING = "preempting"
    PAUSED = "paused"
    QUEUE_PAUSED = "queue_paused"
    EXPIRED = "expired"
    RETRY = "retry"
    BATCHING = "batching"
    BATCH = "batch"


LABELS: dict[Reason, str] = {
    Reason.NONE: "—",
    Reason.PRIORITY: "Behind higher-priority jobs",
    Reason.RESOURCES: "Waiting for free GPUs",
    Reason.GLOBAL_LIMIT: "Global concurrency limit reached",
    Reason.USER_LIMIT: "Owner's concurrency limit reached",
    Reason.TEAM_LIMIT: "Team's concurrency limit reached",
    Reason.QUOTA: "GPU-time quota used up",
    Reason.OFF_PEAK: "Off-peak only: waits for the off-peak window",
    Reason.BEGIN_TIME: "Scheduled to start later",
    Reason.APPROVAL: "Awaiting approval",
    Reason.DEPENDENCY: "Waiting for other jobs to complete",
    Reason.CONFLICT: "A resource it needs is held by a running job",
    Reason.SERIAL: "Serial mode: one job at a time",
    Reason.PREEMPTING: "Lower-priority jobs are being stopped for it",
    Reason.PAUSED: "Paused",
    Reason.QUEUE_PAUSED: "The queue is paused",
    Reason.EXPIRED: "Waited past the expiry limit",
    Reason.RETRY: "Failed; waits before its next attempt",
    Reason.BATCHING: "Collecting a batch of like jobs",
    Reason.BATCH: "Runs inside another job's batch",
}
