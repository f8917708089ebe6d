"""What a notification says: a subject, a text and the event's data, fixed when the delivery is made."""

from django.conf import settings

from notifications.models import Kind
from scheduling.events import for_receiver

_SAYS = {
    Kind.STARTED: "started on {node} (GPU {gpus})",
    Kind.COMPLETED: "completed",
    Kind.FAILED: "failed",
    Kind.REQUEUED: "was sent back to the queue (attempt {attempt})",
    Kind.APPROVAL_NEEDED: "of {owner} waits for approval",
    Kind.APPROVED: "was approved",
    Kind.REJECTED: "was rejected",
}


def compose(message: dict, kind: str, *, full: bool, log: list[str] | None = None) -> dict:
    """The payload of a delivery about this event. `full`: for someone who may read the job (the
    transition's reason, a notice's detail and the log's last lines); else only the queue page's fields."""
    data = for_receiver(message, may_read=full)["data"]
    if kind == Kind.NODE_OFFLINE:
        subject = f"Node {data.get('name', '?')} is offline"
    else:
        job = f"Job {message['job']} ({data.get('name') or 'unnamed'})"
        if kind in _SAYS:
            says = _SAYS[kind].format(
                node=data.get("node") or "?",
                gpus=",".join(map(str, data.get("gpu_indices") or [])) or "-",
                attempt=data.get("attempt"),
                owner=data.get("owner"),
            )
        else:
            says = f"- {Kind(kind).label.lower()}"
        subject = f"{job} {says}"
    lines = [subject]
    if full and data.get("reason"):
        lines.append(str(data["reason"]))
    url = ""
    if settings.GPUQ_NOTIFY_BASE_URL and message["job"]:
        url = f"{settings.GPUQ_NOTIFY_BASE_URL.rstrip('/')}/jobs/{message['job']}/"
        lines.append(url)
    if full and log:
        lines += ["", "Last lines of the log:", *log]
    payload = {
        "kind": kind,
        "label": Kind(kind).label,
        "subject": f"[gpuq] {subject}",
        "text": "\n".join(lines),
        "event": message["id"],
        "at": message["at"],
        "url": url,
        ("node" if kind == Kind.NODE_OFFLINE else "job"): data,
    }
    if full and log is not None:
        payload["log"] = log
    return payload
