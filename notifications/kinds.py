"""Which notification kind an event is (a pure table over `Event.as_message()`; None: nothing to tell)."""

from notifications.models import Kind

NOTICES = frozenset({Kind.IDLE_WARNING, Kind.STALLED, Kind.WAITING_LONG, Kind.QUOTA_80, Kind.QUOTA_100})
HELD = frozenset({"dispatched", "running"})
# Notices told under another kind: idle reclaim's report-only mode tells the owner as its warning does.
SAME_AS = {"idle_report": Kind.IDLE_WARNING}


def classify(message: dict) -> str | None:
    """The kind of a job or node event: a job notice by its `notice`, a status change by where it went
    from where (a requeue is a job sent back to pending from its GPUs: a retry, a preemption, a lost node)."""
    data = message.get("data") or {}
    if message["kind"] == "node":
        return Kind.NODE_OFFLINE if data.get("status") == "offline" else None
    if message["kind"] != "job":
        return None
    if "notice" in data:
        notice = SAME_AS.get(data["notice"], data["notice"])
        return notice if notice in NOTICES else None
    to, came = data.get("status"), data.get("from", "")
    if to == came:
        return None
    if to == "running":
        return Kind.STARTED if came == "dispatched" else None
    if to in ("completed", "failed", "rejected"):
        return {"completed": Kind.COMPLETED, "failed": Kind.FAILED, "rejected": Kind.REJECTED}[to]
    if to == "pending" and came in HELD:
        return Kind.REQUEUED
    if to == "blocked":
        return Kind.APPROVAL_NEEDED
    if came == "blocked" and to in ("pending", "scheduled"):
        return Kind.APPROVED
    return None
