"""Input and output shapes of the jobs API."""

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers

from accounts.models import Team
from accounts.permissions import can_see_env
from scheduling.models import Job, JobStateTransition, JobTemplate, SchedulingPolicy
from scheduling.policies import validate_config

User = get_user_model()


class JobSubmitIn(serializers.Serializer):
    template = serializers.SlugRelatedField(
        slug_field="name",
        queryset=JobTemplate.objects.all(),
        required=False,
        help_text="Name of a job template; give `params` with it.",
    )
    params = serializers.JSONField(required=False, help_text="Template parameters (checked by its schema).")
    argv = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False),
        required=False,
        allow_empty=False,
        help_text="A raw command as a list of arguments, run without a shell (needs permission).",
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    env = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False), required=False
    )
    gpu_count = serializers.IntegerField(min_value=1, max_value=1024, required=False)
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    time_limit_seconds = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    stall_timeout_seconds = serializers.IntegerField(
        min_value=1,
        required=False,
        allow_null=True,
        help_text="End it after this long without output or progress.",
    )
    max_attempts = serializers.IntegerField(min_value=1, max_value=100, required=False)
    start_after = serializers.DateTimeField(
        required=False, allow_null=True, help_text="Start no earlier than this."
    )
    off_peak_only = serializers.BooleanField(
        required=False, help_text="Start only inside the off-peak window."
    )
    depends_on = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text="Ids of jobs that must complete first.",
    )
    resources = serializers.ListField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text='Named resources held exclusively, e.g. ["model:flux-dev"].',
    )
    preemptible = serializers.BooleanField(required=False, help_text="May be stopped for urgent work.")
    min_gpu_memory_mb = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    gpu_model = serializers.CharField(
        max_length=100, required=False, allow_blank=True, help_text='A glob: "A100*".'
    )
    device_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=0),
        required=False,
        help_text="These exact GPU indices (as many as gpu_count).",
    )
    node_labels = serializers.DictField(
        child=serializers.CharField(max_length=200),
        required=False,
        help_text='Node label globs, all must match: {"gpu_type": "a100*"}.',
    )
    target = serializers.ChoiceField(choices=["auto", "local", "worker"], required=False)
    dry_run = serializers.BooleanField(required=False, help_text="Say where it would go; create nothing.")
    no_wait = serializers.BooleanField(required=False, help_text="Refuse (409) unless it can start now.")

    def validate(self, data):
        if ("template" in data) == ("argv" in data):
            raise serializers.ValidationError({"template": "give either a template (with params) or an argv"})
        if "params" in data and not isinstance(data["params"], dict):
            raise serializers.ValidationError({"params": "must be an object"})
        return data


class TransitionOut(serializers.ModelSerializer):
    by = serializers.CharField(source="triggered_by.username", default=None)

    class Meta:
        model = JobStateTransition
        fields = ["id", "from_status", "to_status", "attempt", "at", "by", "reason"]


class JobOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    template = serializers.CharField(source="template.name", default=None)
    node = serializers.CharField(source="node.name", default=None)
    cancel_requested = serializers.SerializerMethodField()

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "owner",
            "template",
            "params",
            "argv",
            "env",
            "gpu_count",
            "priority",
            "status",
            "wait_reason",
            "wait_detail",
            "attempt",
            "max_attempts",
            "time_limit_seconds",
            "stall_timeout_seconds",
            "faults",
            "submitted_at",
            "started_at",
            "finished_at",
            "exit_code",
            "error",
            "progress",
            "node",
            "gpu_indices",
            "cancel_requested",
            "stop_request",
            "start_after",
            "off_peak_only",
            "depends_on",
            "resources",
            "preemptible",
            "min_gpu_memory_mb",
            "gpu_model",
            "device_ids",
            "node_labels",
            "target",
            "batch_role",
            "batch_leader",
        ]

    depends_on = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    def get_cancel_requested(self, job) -> bool:
        return job.stop_request == "cancel"

    def to_representation(self, job):
        """`env` only for those who may see it (the owner and admins; give the request in the context):
        leads and shares see the rest."""
        data = super().to_representation(job)
        request = self.context.get("request")
        if request is None or not can_see_env(request.user, job):
            data.pop("env", None)
        return data


class JobDetailOut(JobOut):
    transitions = TransitionOut(many=True, read_only=True)

    class Meta(JobOut.Meta):
        fields = [*JobOut.Meta.fields, "transitions"]


class QueueJobOut(serializers.Serializer):
    """What everyone may see of a queued job: no argv, no environment."""

    id = serializers.IntegerField(source="job.id")
    name = serializers.CharField(source="job.name")
    owner = serializers.CharField(source="job.owner.username")
    status = serializers.CharField(source="job.status")
    priority = serializers.IntegerField(source="job.priority")
    gpu_count = serializers.IntegerField(source="job.gpu_count")
    position = serializers.IntegerField(allow_null=True)
    wait_reason = serializers.CharField(source="job.wait_reason")
    wait_detail = serializers.CharField(source="job.wait_detail")
    team = serializers.CharField(source="job.team.name", default=None)
    node = serializers.CharField(source="job.node.name", default=None)
    gpu_indices = serializers.ListField(source="job.gpu_indices", child=serializers.IntegerField())
    submitted_at = serializers.DateTimeField(source="job.submitted_at")
    started_at = serializers.DateTimeField(source="job.started_at", allow_null=True)
    estimated_start = serializers.DateTimeField(
        allow_null=True, help_text="expected start; null: unknown (it waits for a job nothing bounds)"
    )
    estimated_start_latest = serializers.DateTimeField(
        allow_null=True, help_text="latest start if every job runs to its time limit; null: no bound"
    )
    off_peak_only = serializers.BooleanField(source="job.off_peak_only")


class QueueOut(serializers.Serializer):
    running = QueueJobOut(many=True)
    pending = QueueJobOut(many=True)
    held = QueueJobOut(many=True, help_text="scheduled, blocked (awaiting approval) and paused jobs")


class TemplateOut(serializers.ModelSerializer):
    class Meta:
        model = JobTemplate
        fields = [
            "name",
            "description",
            "argv_template",
            "params_schema",
            "allowed_env",
            "default_gpu_count",
            "default_time_limit_seconds",
            "batchable",
            "batch_key_params",
            "batch_window_seconds",
            "batch_max_size",
        ]


class LogOut(serializers.Serializer):
    job = serializers.IntegerField()
    lines = serializers.ListField(child=serializers.CharField())
    truncated = serializers.BooleanField()


class ReasonIn(serializers.Serializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RejectIn(serializers.Serializer):
    reason = serializers.CharField(max_length=300)


class PriorityIn(serializers.Serializer):
    priority = serializers.IntegerField(min_value=-1000, max_value=1000)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class ReorderIn(serializers.Serializer):
    job = serializers.IntegerField(min_value=1)
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    before = serializers.IntegerField(min_value=1, required=False, help_text="place just before this job")
    after = serializers.IntegerField(min_value=1, required=False, help_text="place just after this job")
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, data):
        if "before" in data and "after" in data:
            raise serializers.ValidationError({"before": "give before or after, not both"})
        return data


class ConcurrencyIO(serializers.Serializer):
    max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    user_max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    team_max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)


class QuotaIn(serializers.Serializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False)
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all(), required=False)
    daily_gpu_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)
    weekly_gpu_seconds = serializers.IntegerField(min_value=0, required=False, allow_null=True, default=None)

    def validate(self, data):
        if ("user" in data) == ("team" in data):
            raise serializers.ValidationError({"user": "give a user or a team"})
        return data


class PolicySerializer(serializers.ModelSerializer):
    class Meta:
        model = SchedulingPolicy
        fields = ["id", "type", "config", "enabled", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate(self, data):
        policy_type = data.get("type", self.instance.type if self.instance else None)
        config = data.get("config", self.instance.config if self.instance else {})
        try:
            data["config"] = validate_config(policy_type, config)
        except DjangoValidationError as error:
            raise serializers.ValidationError(error.message_dict) from None
        return data
