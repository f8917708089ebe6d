"""Writes on nodes and GPUs: register this machine's node and inventory, refresh it, heartbeat."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import DateTimeField, ExpressionWrapper
from django.db.models.functions import Now
from django.utils import timezone

from accounts.permissions import is_admin
from gpus import inventory
from gpus import procs as gpu_procs
from gpus.inventory import GpuInfo
from gpus.models import Gpu, Node, NodeStatus
from scheduling import events, ticker, timeseries

log = logging.getLogger("gpuq.nodes")


def node_register(
    *, name: str, backend: str, gpus: list[GpuInfo], labels: dict, boot_id: str, local: bool = False
) -> Node:
    """Create or refresh the node and its GPUs (as node_refresh_gpus does). At registration every
    reported GPU is healthy again, even one an admin took out by hand."""
    now = timezone.now()
    with transaction.atomic():
        node, _ = Node.objects.update_or_create(
            name=name,
            defaults={
                "backend": backend,
                "labels": labels,
                "boot_id": boot_id,
                "heartbeat_at": Now(),  # the database's clock, as every heartbeat (this machine's may be off)
                "local": local,
            },
        )
        node.refresh_from_db(fields=["heartbeat_at"])
        if node.status == NodeStatus.OFFLINE:
            Node.objects.filter(pk=node.pk).update(status=NodeStatus.ONLINE)
            node.status = NodeStatus.ONLINE
        reported = {pid for info in gpus for pid in info.process_pids}
        _apply_inventory(
            node,
            gpus,
            our_pids=gpu_procs.our_pids(node, reported),
            now=now,
            revive_all=True,
            missing_reason=f"no longer reported by {backend}",
        )
    return node


def node_refresh_gpus(
    *, node: Node, gpus: list[GpuInfo], our_pids: set[int], missing_reason: str = ""
) -> None:
    """Store a fresh inventory of the node's GPUs (matched by index).

    Each reported GPU gets its readings, and as `foreign_pids` the pids on it that are not in `our_pids`
    (the node's running jobs and their descendants): while any, it is busy and not given out. A GPU read
    with an error, or no longer reported, is marked unhealthy with the reason (never deleted: its
    allocation history stays); when it is reported well again it is healthy again. A GPU an admin made
    unhealthy by hand (no reason) stays so until the node registers again."""
    now = timezone.now()
    with transaction.atomic():
        _apply_inventory(
            node,
            gpus,
            our_pids=our_pids,
            now=now,
            revive_all=False,
            missing_reason=missing_reason or f"no longer reported by {node.backend}",
        )
        # The readings of GPUs held by jobs become points of their charts.
        timeseries.record_gpu_readings(
            node_id=node.pk, readings={info.index: info for info in gpus if not info.error}, at=now
        )
        events.emit_node(node.name, refreshed=True)


def node_refresh_inventory(*, node: Node) -> None:
    """Read the node's backend again and store it (gpuq_node, every GPUQ_INVENTORY_REFRESH_SECONDS). If
    the backend cannot list its GPUs at all, every GPU of the node is marked unhealthy."""
    try:
        gpus = inventory.read(node.backend, node_name=node.name)
    except inventory.InventoryError as error:
        log.warning("node %s: inventory failed (%s); its GPUs are unhealthy", node.name, error)
        node_refresh_gpus(node=node, gpus=[], our_pids=set(), missing_reason=f"inventory failed: {error}")
        return
    reported = {pid for info in gpus for pid in info.process_pids}
    node_refresh_gpus(node=node, gpus=gpus, our_pids=gpu_procs.our_pids(node, reported))


_REASON_MAX = Gpu._meta.get_field("unhealthy_reason").max_length
_NO_READINGS = {
    "memory_used_mb": None,
    "utilization_percent": None,
    "temperature_c": None,
    "foreign_pids": [],
}


def _apply_inventory(
    node: Node, gpus: list[GpuInfo], *, our_pids: set[int], now, revive_all: bool, missing_reason: str
) -> None:
    existing = {gpu.index: gpu for gpu in Gpu.objects.filter(node=node)}
    for info in gpus:
        gpu = existing.pop(info.index, None)
        if info.error:
            reason = info.error[:_REASON_MAX]
            # Keep what was known of a device that cannot be read now; store what could be read.
            known = {k: v for k, v in _identity(info).items() if v} if gpu else _identity(info)
            fields = {**known, **_NO_READINGS, "healthy": False, "unhealthy_reason": reason}
            if gpu is None or gpu.healthy:
                log.warning("node %s: GPU %s unhealthy: %s", node.name, info.index, reason)
        else:
            if gpu is not None and gpu.uuid and info.uuid != gpu.uuid:
                log.warning("node %s: GPU %s is now %s (was %s)", node.name, info.index, info.uuid, gpu.uuid)
            fields = {
                **_identity(info),
                "memory_used_mb": info.memory_used_mb,
                "utilization_percent": info.utilization_percent,
                "temperature_c": info.temperature_c,
                "foreign_pids": sorted(set(info.process_pids) - set(our_pids)),
                "readings_at": now,
            }
            if gpu is None or gpu.healthy or gpu.unhealthy_reason or revive_all:
                if gpu is not None and not gpu.healthy:
                    log.info("node %s: GPU %s is healthy again", node.name, info.index)
                fields.update(healthy=True, unhealthy_reason="")
        if gpu is None:
            Gpu.objects.create(node=node, index=info.index, **fields)
        else:
            Gpu.objects.filter(pk=gpu.pk).update(**fields)
    # Not reported: out of the pool. One an admin took out by hand (unhealthy, no reason) is left as is.
    for gpu in existing.values():
        if gpu.healthy or gpu.unhealthy_reason:
            if gpu.healthy:
                log.warning("node %s: GPU %s unhealthy: %s", node.name, gpu.index, missing_reason)
            Gpu.objects.filter(pk=gpu.pk).update(
                healthy=False, unhealthy_reason=missing_reason[:_REASON_MAX], **_NO_READINGS
            )


def _identity(info: GpuInfo) -> dict:
    return {
        "uuid": info.uuid,
        "model_name": info.model_name,
        "memory_mb": info.memory_mb,
        "simulated": info.simulated,
    }


def node_heartbeat(*, node: Node) -> None:
    """Renew the node's liveness; a node marked offline while silent comes back online."""
    with transaction.atomic():  # on the database's clock, like every lease time
        if (
            Node.objects.filter(pk=node.pk)
            .exclude(status=NodeStatus.ONLINE)
            .update(heartbeat_at=Now(), status=NodeStatus.ONLINE)
        ):
            events.emit_node(node.name, status=NodeStatus.ONLINE)
        else:
            Node.objects.filter(pk=node.pk).update(heartbeat_at=Now())


def node_go_offline(*, node: Node) -> None:
    """Take the node's GPUs out of the pool (the planner places only on online nodes)."""
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)
        events.emit_node(node.name, status=NodeStatus.OFFLINE)


def nodes_mark_offline(now=None) -> list[str]:
    """Nodes silent for GPUQ_NODE_TIMEOUT_SECONDS go offline: their GPUs leave the pool. Their jobs are
    not touched here: each is rescued by its own lease (scheduling.reaper), never by the node's silence
    alone, since a node that lost its database connection may still be running them."""
    if now is None:  # the database's clock: the one the heartbeats carry
        cutoff = ExpressionWrapper(
            Now() - timedelta(seconds=settings.GPUQ_NODE_TIMEOUT_SECONDS), output_field=DateTimeField()
        )
    else:
        cutoff = now - timedelta(seconds=settings.GPUQ_NODE_TIMEOUT_SECONDS)
    silent = list(
        Node.objects.filter(status=NodeStatus.ONLINE, heartbeat_at__lt=cutoff).values_list("name", flat=True)
    )
    if silent:
        with transaction.atomic():
            Node.objects.filter(name__in=silent, status=NodeStatus.ONLINE, heartbeat_at__lt=cutoff).update(
                status=NodeStatus.OFFLINE
            )
            for name in silent:
                events.emit_node(name, status=NodeStatus.OFFLINE)
        log.warning(
            "node(s) %s: no heartbeat for %g s; offline",
            ", ".join(silent),
            settings.GPUQ_NODE_TIMEOUT_SECONDS,
        )
    return silent


def node_set_drained(*, node: Node, user, drained: bool) -> Node:
    """Drain (no new jobs; running ones finish) or undrain a node."""
    if not is_admin(user):
        raise PermissionDenied("Only admins drain nodes.")
    with transaction.atomic():
        Node.objects.filter(pk=node.pk).update(drained=drained)
        events.emit_node(node.name, drained=drained)
    node.drained = drained
    if not drained:
        ticker.request_tick()
    return node
