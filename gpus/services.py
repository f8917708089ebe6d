"""Writes on nodes and GPUs: register this machine's node and inventory, heartbeat."""

from django.db import transaction
from django.utils import timezone

from gpus.inventory import GpuInfo
from gpus.models import Gpu, Node, NodeStatus


def node_register(*, name: str, backend: str, gpus: list[GpuInfo], labels: dict, boot_id: str) -> Node:
    """Create or refresh the node and its GPUs. GPUs no longer reported are marked unhealthy, not
    deleted: their allocation history stays and the planner stops giving them out."""
    now = timezone.now()
    with transaction.atomic():
        node, _ = Node.objects.update_or_create(
            name=name,
            defaults={"backend": backend, "labels": labels, "boot_id": boot_id, "heartbeat_at": now},
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
    Node.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now())


def node_go_offline(*, node: Node) -> None:
    """Take the node's GPUs out of the pool (the planner places only on online nodes)."""
    Node.objects.filter(pk=node.pk).update(status=NodeStatus.OFFLINE)
