"""Output shapes of the API answers that views build as dicts (stats, quotas, nodes, approvals…): what
the OpenAPI schema promises, checked against real answers by tests/test_api_contract.py."""

from rest_framework import serializers

from scheduling.api.paging import paged
from scheduling.api.serializers import JobOut, QueueJobOut, QueueOut
from scheduling.models import WaitReason
from scheduling.states import Status

_COUNT = serializers.IntegerField()


class QueueStatsOut(serializers.Serializer):
    queue_depth = serializers.IntegerField(help_text="pending jobs")
    running = serializers.IntegerField(help_text="jobs holding GPUs")
    max_concurrent = serializers.IntegerField(allow_null=True)
    user_max_concurrent = serializers.IntegerField(allow_null=True)
    team_max_concurrent = serializers.IntegerField(allow_null=True)
    avg_wait_seconds = serializers.FloatField(allow_null=True, help_text="jobs started in the last 24 h")
    by_status = serializers.DictField(child=serializers.IntegerField(), help_text="unfinished jobs by status")
    by_user = serializers.DictField(
        child=serializers.IntegerField(), help_text="pending and running by owner"
    )
    queue_paused = serializers.BooleanField()


class QueueMeOut(serializers.Serializer):
    pending_count = serializers.IntegerField()
    running_count = serializers.IntegerField()
    blocked_count = serializers.IntegerField()
    best_position = serializers.IntegerField(allow_null=True)
    pending_jobs = QueueJobOut(many=True, help_text="the first GPUQ_MAX_PAGE_SIZE, in queue order")
    running_jobs = QueueJobOut(many=True, help_text="the first GPUQ_MAX_PAGE_SIZE")


class QueuePositionOut(serializers.Serializer):
    """A job's place: `position` 0 when it holds GPUs, null when it is not pending."""

    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=Status.choices)
    position = serializers.IntegerField(allow_null=True)
    wait_reason = serializers.ChoiceField(choices=WaitReason.choices, required=False)
    wait_detail = serializers.CharField(required=False)
    estimated_start = serializers.DateTimeField(allow_null=True, required=False)
    estimated_start_latest = serializers.DateTimeField(allow_null=True, required=False)


class QueueListOut(QueueOut):
    pending_count = serializers.IntegerField()
    held_count = serializers.IntegerField()
    offset = serializers.IntegerField()
    limit = serializers.IntegerField()


class ProcessedOut(serializers.Serializer):
    started = serializers.ListField(child=serializers.IntegerField(), help_text="ids of jobs started")
    failed = serializers.ListField(child=serializers.IntegerField(), help_text="ids of jobs failed")
    preempted = serializers.ListField(child=serializers.IntegerField(), help_text="ids of jobs preempted")


class QuotaWindowOut(serializers.Serializer):
    used_gpu_seconds = serializers.IntegerField()
    limit_gpu_seconds = serializers.IntegerField(allow_null=True, help_text="null: no limit")
    remaining_gpu_seconds = serializers.IntegerField(allow_null=True)
    warning = serializers.BooleanField()
    exceeded = serializers.BooleanField()


class UserQuotaOut(serializers.Serializer):
    daily = QuotaWindowOut()
    weekly = QuotaWindowOut()


class TeamQuotaOut(UserQuotaOut):
    name = serializers.CharField()


class QuotaStatusOut(serializers.Serializer):
    timezone = serializers.CharField()
    day_started_at = serializers.DateTimeField()
    week_started_at = serializers.DateTimeField()
    user = UserQuotaOut()
    team = TeamQuotaOut(allow_null=True)
    warning = serializers.BooleanField()
    exceeded = serializers.BooleanField()


class QuotaOut(serializers.Serializer):
    user = serializers.CharField(allow_null=True)
    team = serializers.CharField(allow_null=True)
    daily_gpu_seconds = serializers.IntegerField(allow_null=True)
    weekly_gpu_seconds = serializers.IntegerField(allow_null=True)


class GpuOut(serializers.Serializer):
    index = serializers.IntegerField()
    uuid = serializers.CharField()
    name = serializers.CharField()
    memory_mb = serializers.IntegerField()
    memory_gb = serializers.FloatField()
    simulated = serializers.BooleanField()
    healthy = serializers.BooleanField()
    unhealthy_reason = serializers.CharField()
    busy = serializers.BooleanField(help_text="used by a process that is not a gpuq job")
    foreign_pids = serializers.ListField(child=serializers.IntegerField())
    memory_used_mb = serializers.IntegerField(allow_null=True)
    utilization_percent = serializers.IntegerField(allow_null=True)
    temperature_c = serializers.IntegerField(allow_null=True)
    readings_at = serializers.DateTimeField(allow_null=True)


class AllocatedGpuOut(GpuOut):
    allocated = serializers.BooleanField()
    job_id = serializers.IntegerField(allow_null=True)
    owner = serializers.CharField(allow_null=True)


class NodeOut(serializers.Serializer):
    name = serializers.CharField()
    status = serializers.CharField()
    drained = serializers.BooleanField()
    backend = serializers.CharField()
    simulated = serializers.BooleanField()
    labels = serializers.DictField(child=serializers.CharField())
    heartbeat_at = serializers.DateTimeField(allow_null=True)
    gpus = GpuOut(many=True)


class NodesOut(serializers.Serializer):
    nodes = NodeOut(many=True)


class DeviceOut(AllocatedGpuOut):
    node = serializers.CharField()


class GpuAllocationOut(serializers.Serializer):
    allocated_gpus = serializers.ListField(child=serializers.CharField(), help_text='"node:index"')
    available_gpus = serializers.ListField(child=serializers.CharField(), help_text='"node:index"')
    running_jobs = serializers.IntegerField()
    devices = DeviceOut(many=True)


class StatusGpuOut(GpuOut):
    """A GPU in the system status: who holds it only when the allocation was asked for."""

    allocated = serializers.BooleanField(required=False, help_text="with include_allocation=true")
    job_id = serializers.IntegerField(
        allow_null=True, required=False, help_text="with include_allocation=true"
    )
    owner = serializers.CharField(allow_null=True, required=False, help_text="with include_allocation=true")


class StatusNodeOut(NodeOut):
    gpus = StatusGpuOut(many=True)


class SystemStatusOut(serializers.Serializer):
    nodes = StatusNodeOut(many=True, help_text="with include_allocation=true, each GPU's holder too")
    gpu_count = serializers.IntegerField()
    gpu_allocation = GpuAllocationOut(required=False, help_text="with include_allocation=true")


class CostOut(serializers.Serializer):
    estimate = serializers.FloatField()
    gpus = serializers.IntegerField()
    hours = serializers.FloatField()
    price_per_gpu_hour = serializers.FloatField()
    max_cost = serializers.FloatField(allow_null=True)


class ApprovalOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.CharField()
    team = serializers.CharField(allow_null=True)
    gpu_count = serializers.IntegerField()
    gpu_model = serializers.CharField()
    time_limit_seconds = serializers.IntegerField(allow_null=True)
    priority = serializers.IntegerField()
    submitted_at = serializers.DateTimeField()
    start_after = serializers.DateTimeField(allow_null=True)
    rule = serializers.CharField(help_text="why it waits")
    cost = CostOut()
    approve_url = serializers.CharField()
    reject_url = serializers.CharField()


class ShareOut(serializers.Serializer):
    job = serializers.IntegerField()
    user = serializers.CharField()
    permissions = serializers.ListField(child=serializers.CharField())


class DryRunOut(serializers.Serializer):
    dry_run = serializers.BooleanField(help_text="always true: nothing was created")
    would_start = serializers.BooleanField()
    status = serializers.ChoiceField(choices=Status.choices, help_text="the status it would be created in")
    node = serializers.CharField(allow_null=True)
    gpus = serializers.ListField(child=serializers.IntegerField())
    reason = serializers.ChoiceField(choices=WaitReason.choices)
    detail = serializers.CharField()
    position = serializers.IntegerField(allow_null=True)


PAGINATED_JOBS = paged("PaginatedJobList", JobOut(many=True))
PAGINATED_APPROVALS = paged("PaginatedApprovalList", ApprovalOut(many=True))
