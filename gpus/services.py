"""Writes on nodes and GPUs: register this machine's node and inventory, heartbeat."""

import logging
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.permissions import is_admin
from gpus.inventory import GpuInfo
from gpus.models import Gpu, Node, NodeStatus

log = logging.getLogger("gpuq.nodes")


def node_register(
    *, name: str, backend: str, gpus: list[GpuInfo], labels: dict, boot_id: str, local: bool = False
) -> Node:
    """Create or refresh the node and its GPUs. GPUs no longer reported are marked unhealthy, not
    deleted: their allocation history stays and the planner stops giving them out."""
    now = timezone.now()
    with transaction.atomic():
        node, _ = Node.objects.update_or_create(
            name=name,
            defaults={
                "backend": backend,
                "labels": labels,
                "boot_id": boot_id,
                "heartbeat_at": now,
                "local": local,
            },
        )
        if node.status == NodeStatus.OFFLINE:
            Node.objects.filter(pk=node.pk).update(status=NodeStatus.ONLINE)
            node.status = NodeStatus.ONLINE
        seen = []
        for info in gpus:
            gpu, _ = Gpu.objects.update_or_create(
                node=node,
                index=info.index,
                defaults={
                    "uuid": info.uuid,
                    "model_name": info.model_name,
                    "memory_mb": info.memory_mb,
                    "simulated": info.simulated,
                    "healthy": True,
                },
            )
            seen.append(gpu.pk)
        Gpu.objects.filter(node=node).exclude(pk__in=seen).update(healthy=False)
    return node


def node_heartbeat(*, node: Node) -> None:
    """Renew the node's liveness; a node marked offline while silent comes back online."""
    Node.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now(), status=NodeStatus.ONLINE)


def node_go_offline(*, node: Node) -> None:
    """Take the node's GPUs out of the pool (the planner places only on online nodes)."""
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)


def nodes_mark_offline(now=None) -> list[str]:
    """Nodes silent for GPUQ_NODE_TIMEOUT_SECONDS go offline: their GPUs leave the pool. Their jobs are
    not touched here: each is rescued by its own lease (scheduling.reaper), never by the node's silence
    alone, since a node that lost its database connection may still be running them."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.GPUQ_NODE_TIMEOUT_SECONDS)
    silent = list(
        Node.objects.filter(status=NodeStatus.ONLINE, heartbeat_at__lt=cutoff).values_list("name", flat=True)
    )
    if silent:
        Node.objects.filter(name__in=silent, status=NodeStatus.ONLINE, heartbeat_at__lt=cutoff).update(
            status=NodeStatus.OFFLINE
        )
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
    Node.objects.filter(pk=node.pk).update(drained=drained)
    node.drained = drained
    if not drained:
        from scheduling.events import request_tick

        request_tick()
    return node
