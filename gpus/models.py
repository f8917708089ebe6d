"""Nodes, their GPUs, and allocations of GPUs to jobs (at most one active allocation per GPU)."""

from django.db import models
from django.utils import timezone


class NodeStatus(models.TextChoices):
    ONLINE = "online", "Online"  # heartbeating
    OFFLINE = "offline", "Offline"  # stopped, or no heartbeat for GPUQ_NODE_TIMEOUT_SECONDS


class Node(models.Model):
    name = models.CharField(max_length=100, unique=True)
    labels = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=NodeStatus.choices, default=NodeStatus.ONLINE)
    # Drained: takes no new jobs (running ones finish); survives restarts until undrained.
    drained = models.BooleanField(default=False)
    local = models.BooleanField(default=False, help_text="The server's own node (target 'local').")
    backend = models.CharField(max_length=16, default="declared", help_text="nvml or declared")
    boot_id = models.CharField(max_length=64, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    registered_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.name

    @property
    def queue_name(self) -> str:
        """The django-q2 queue this node's executor cluster consumes."""
        return queue_name_for(self.name)


def queue_name_for(node_name: str) -> str:
    return f"node-{node_name}"


class Gpu(models.Model):
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gpus")
    index = models.PositiveIntegerField()
    uuid = models.CharField(max_length=100, blank=True, default="")
    model_name = models.CharField(max_length=100, blank=True, default="")
    memory_mb = models.PositiveIntegerField(default=0)
    simulated = models.BooleanField(default=False)
    healthy = models.BooleanField(default=True)
    # Why the inventory took it out of the pool (no longer reported, or an NVML error); empty when it is
    # healthy, or when an admin unticked `healthy` (the inventory then leaves it out until the node
    # restarts).
    unhealthy_reason = models.CharField(max_length=300, blank=True, default="")
    # The latest readings of the inventory (None: the backend or the device has none; declared GPUs).
    memory_used_mb = models.PositiveIntegerField(null=True, blank=True)
    utilization_percent = models.PositiveSmallIntegerField(null=True, blank=True)
    temperature_c = models.SmallIntegerField(null=True, blank=True)
    # Pids of processes on the GPU that are not gpuq jobs: while any, the GPU is busy and not given out.
    foreign_pids = models.JSONField(default=list, blank=True)
    readings_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["node__name", "index"]
        constraints = [models.UniqueConstraint(fields=["node", "index"], name="gpu_unique_index_per_node")]

    def __str__(self) -> str:
        kind = " (simulated)" if self.simulated else ""
        return f"{self.node.name}:{self.index} {self.model_name}{kind}"

    @property
    def busy_foreign(self) -> bool:
        """A process that is not a gpuq job uses it: it is not given out."""
        return bool(self.foreign_pids)


class AllocationQuerySet(models.QuerySet):
    def active(self):
        return self.filter(released_at__isnull=True)


class Allocation(models.Model):
    """A GPU given to one attempt of a job. Active while `released_at` is empty."""

    gpu = models.ForeignKey(Gpu, on_delete=models.PROTECT, related_name="allocations")
    job = models.ForeignKey("scheduling.Job", on_delete=models.CASCADE, related_name="allocations")
    attempt = models.PositiveIntegerField()
    allocated_at = models.DateTimeField(default=timezone.now)  # the tick sets the database's clock
    released_at = models.DateTimeField(null=True, blank=True)

    objects = AllocationQuerySet.as_manager()

    class Meta:
        constraints = [
            # The database itself forbids a GPU held twice.
            models.UniqueConstraint(
                fields=["gpu"], condition=models.Q(released_at__isnull=True), name="gpu_one_active_allocation"
            )
        ]

    def __str__(self) -> str:
        return f"{self.gpu} → job {self.job_id}"
