"""Input and output shapes of the jobs API."""

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from accounts.models import Team
from accounts.permissions import can_see_env
from queueproject.schema import oas30, schema_rule
from queueproject.strict import BIG_INT_MAX, INT_MAX, StrictInput, StrictSerializer
from scheduling import environment
from scheduling.models import (
    Attempt,
    AttemptPart,
    Job,
    JobAudit,
    JobStateTransition,
    JobTemplate,
    SchedulingPolicy,
    Sweep,
    WaitReason,
)
from scheduling.policies import SCHEMAS as POLICY_SCHEMAS
from scheduling.policies import validate_config
from scheduling.states import TERMINAL

User = get_user_model()

# What one exec can take: Linux refuses an argument over 128 KiB (MAX_ARG_STRLEN) and all of argv and the
# environment together over ARG_MAX (2 MiB by default). Refused at submit, not at exec.
ARGV_ELEMENT_MAX = 32_768
ARGV_TOTAL_MAX = 262_144
ARGV_ITEMS_MAX = 1_000
ENV_VALUE_MAX = 32_768
ENV_TOTAL_MAX = 262_144


class TemplateField(serializers.SlugRelatedField):
    """A template by name. A bulk submission puts the templates it names in the context (`templates`,
    by name), so its n jobs look each one up once, not n times."""

    def to_internal_value(self, data):
        known = self.context.get("templates")
        if known is not None and isinstance(data, str) and data in known:
            return known[data]
        return super().to_internal_value(data)


# A template or an argv, not both; distinct devices; params an object (templates.py checks the rest,
# against the template's own schema: 422).
_JOB_PROPERTIES = {
    "device_ids": {"uniqueItems": True},
    "params": {"type": "object"},
    "env": {
        "maxProperties": environment.MAX_VARIABLES,
        "propertyNames": {
            "pattern": rf"^(?!{'|'.join(environment.RESERVED_PREFIXES)})[A-Za-z_][A-Za-z0-9_]*$",
            "maxLength": environment.MAX_NAME_LENGTH,
        },
    },
}


@schema_rule(
    oneOf=[{"required": ["template"]}, {"required": ["argv"]}],
    properties={**_JOB_PROPERTIES, "argv": {"minItems": 1}},
)
class JobSubmitIn(StrictSerializer):
    template = TemplateField(
        slug_field="name",
        queryset=JobTemplate.objects.all(),
        required=False,
        help_text="Name of a job template; give `params` with it.",
    )
    params = serializers.JSONField(required=False, help_text="Template parameters (checked by its schema).")
    argv = serializers.ListField(
        child=serializers.CharField(trim_whitespace=False, max_length=ARGV_ELEMENT_MAX),
        required=False,
        allow_empty=False,
        max_length=ARGV_ITEMS_MAX,
        help_text="A raw command as a list of arguments, run without a shell (needs permission).",
    )
    name = serializers.CharField(max_length=200, required=False, allow_blank=True)
    env = serializers.DictField(
        child=serializers.CharField(
            allow_blank=True, trim_whitespace=False, max_length=environment.MAX_VALUE_LENGTH
        ),
        required=False,
    )
    gpu_count = serializers.IntegerField(min_value=1, max_value=1024, required=False)
    nodes = serializers.IntegerField(
        min_value=1,
        max_value=64,
        required=False,
        help_text="A gang job: run one process on each of this many nodes at once (default 1).",
    )
    gpus_per_node = serializers.IntegerField(
        min_value=1,
        max_value=1024,
        required=False,
        help_text="GPUs on each node of a gang job; gpu_count is then nodes × gpus_per_node.",
    )
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    time_limit_seconds = serializers.IntegerField(
        min_value=1, max_value=INT_MAX, required=False, allow_null=True
    )
    stall_timeout_seconds = serializers.IntegerField(
        min_value=1,
        max_value=INT_MAX,
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
        child=serializers.IntegerField(min_value=1, max_value=BIG_INT_MAX),
        required=False,
        help_text="Ids of jobs that must complete first.",
    )
    depends_on_sweeps = serializers.ListField(
        child=serializers.IntegerField(min_value=1),
        required=False,
        help_text="Ids of sweeps whose every job must complete first.",
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
        argv_size = sum(len(arg) for arg in data.get("argv", ()))
        if argv_size > ARGV_TOTAL_MAX:
            raise serializers.ValidationError(
                {"argv": f"at most {ARGV_TOTAL_MAX} characters in all ({argv_size} given)"}
            )
        env_size = sum(len(k) + len(v) for k, v in data.get("env", {}).items())
        if env_size > ENV_TOTAL_MAX:
            raise serializers.ValidationError(
                {"env": f"at most {ENV_TOTAL_MAX} characters of names and values ({env_size} given)"}
            )
        return data


@schema_rule(
    anyOf=[
        {"required": ["grid"], "properties": {"grid": {"minProperties": 1}}},
        {"required": ["sets"], "properties": {"sets": {"minItems": 1}}},
    ]
)
class SweepSpecIn(StrictSerializer):
    """The `sweep` of a template sweep: a grid of values, a list of parameter sets, or both."""

    grid = serializers.DictField(
        child=serializers.ListField(allow_empty=False),
        required=False,
        help_text='Every combination of these values: {"lr": [0.1, 0.01], "bs": [32, 64]} makes 4 jobs.',
    )
    sets = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='Parameter sets, one job each: [{"lr": 0.1}, {"lr": 0.01}].',
    )

    def validate(self, data):
        if not data.get("grid") and not data.get("sets"):
            raise serializers.ValidationError(
                {"grid": 'give a "grid" of values or a list of parameter "sets"'}
            )
        return data


@schema_rule(required=["template", "sweep"], properties=_JOB_PROPERTIES)
class SweepSubmitIn(JobSubmitIn):
    """A template sweep's body (for the schema): a job's fields, applied to every job, and `sweep`."""

    argv = None  # a sweep runs a template
    sweep = SweepSpecIn()


class BulkJobOut(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    array_index = serializers.IntegerField()
    status = serializers.CharField()
    wait_reason = serializers.CharField()


class SweepOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    template = serializers.CharField(source="template.name", default=None, allow_null=True)
    counts = serializers.SerializerMethodField(help_text="How many of its jobs are in each status.")
    finished = serializers.SerializerMethodField(help_text="Every job of the sweep has ended.")

    class Meta:
        model = Sweep
        fields = ["id", "name", "owner", "template", "size", "submitted_at", "counts", "finished"]

    def get_counts(self, sweep) -> dict[str, int]:
        return self.context["counts"]

    def get_finished(self, sweep) -> bool:
        return sum(n for status, n in self.context["counts"].items() if status in TERMINAL) == sweep.size


class SweepCancelledOut(SweepOut):
    cancelled = serializers.IntegerField(
        read_only=True, help_text="How many jobs were cancelled or asked to stop."
    )

    class Meta(SweepOut.Meta):
        fields = [*SweepOut.Meta.fields, "cancelled"]


class TransitionOut(serializers.ModelSerializer):
    by = serializers.CharField(source="triggered_by.username", default=None, allow_null=True)

    class Meta:
        model = JobStateTransition
        fields = ["id", "from_status", "to_status", "attempt", "at", "by", "reason"]


class AttemptPartOut(serializers.ModelSerializer):
    node = serializers.CharField(source="node.name", default=None, allow_null=True)

    class Meta:
        model = AttemptPart
        fields = [
            "rank",
            "node",
            "gpu_indices",
            "address",
            "port",
            "started_at",
            "heartbeat_at",
            "ended_at",
            "exit_code",
            "outcome",
            "reason",
            "log_tail",
        ]


class AttemptOut(serializers.ModelSerializer):
    node = serializers.CharField(source="node.name", default=None, allow_null=True)
    parts = AttemptPartOut(many=True, read_only=True, help_text="a gang job: one per node, by rank")

    class Meta:
        model = Attempt
        fields = [
            "number",
            "node",
            "gpu_indices",
            "dispatched_at",
            "started_at",
            "heartbeat_at",
            "ended_at",
            "exit_code",
            "exit_signal",
            "outcome",
            "reason",
            "parts",
        ]


class JobOut(serializers.ModelSerializer):
    owner = serializers.CharField(source="owner.username")
    template = serializers.CharField(source="template.name", default=None, allow_null=True)
    node = serializers.CharField(source="node.name", default=None, allow_null=True)
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
            "nodes",
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
            "sweep",
            "array_index",
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


class AuditOut(serializers.ModelSerializer):
    """One change to a job that is not a status change: `priority` (old → new), `move` (a reorder),
    `share` (granted or revoked), with who and why."""

    by = serializers.CharField(source="by.username", default=None)

    class Meta:
        model = JobAudit
        fields = ["id", "at", "by", "action", "detail"]


AUDIT_IN_DETAIL = 100  # the newest entries a job's detail carries; GET /jobs/{id}/audit pages them all


class JobDetailOut(JobOut):
    transitions = TransitionOut(many=True, read_only=True)
    attempts = AttemptOut(many=True, read_only=True)
    audit = serializers.SerializerMethodField(
        help_text=f"the newest {AUDIT_IN_DETAIL} audit entries, oldest first (all: GET /jobs/{{id}}/audit)"
    )
    audit_count = serializers.SerializerMethodField(help_text="how many audit entries the job has in all")

    class Meta(JobOut.Meta):
        fields = [*JobOut.Meta.fields, "transitions", "attempts", "audit", "audit_count"]

    @extend_schema_field(AuditOut(many=True))
    def get_audit(self, job) -> list:
        if "audit" in getattr(job, "_prefetched_objects_cache", {}):  # a new job's (services.job_submit)
            newest = sorted(job.audit.all(), key=lambda entry: -entry.pk)[:AUDIT_IN_DETAIL]
        else:
            newest = list(job.audit.select_related("by").order_by("-id")[:AUDIT_IN_DETAIL])
        return AuditOut(newest[::-1], many=True).data

    def get_audit_count(self, job) -> int:
        return job.audit.count()


class SubmittedOut(JobDetailOut):
    queue_position = serializers.IntegerField(
        read_only=True,
        allow_null=True,
        help_text="its place among waiting jobs (1 starts next); null once it holds GPUs, or while it is "
        "held (scheduled, blocked) or waits with a batch",
    )

    class Meta(JobDetailOut.Meta):
        fields = [*JobDetailOut.Meta.fields, "queue_position"]


class QueueJobOut(serializers.Serializer):
    """What everyone may see of a queued job: no argv, no environment."""

    id = serializers.IntegerField(source="job.id")
    name = serializers.CharField(source="job.name")
    owner = serializers.CharField(source="job.owner.username")
    status = serializers.CharField(source="job.status")
    priority = serializers.IntegerField(source="job.priority")
    gpu_count = serializers.IntegerField(source="job.gpu_count")
    position = serializers.IntegerField(allow_null=True)
    wait_reason = serializers.ChoiceField(source="job.wait_reason", choices=WaitReason.choices)
    wait_detail = serializers.CharField(source="job.wait_detail")
    team = serializers.CharField(source="job.team.name", default=None, allow_null=True)
    node = serializers.CharField(source="job.node.name", default=None, allow_null=True)
    gpu_indices = serializers.ListField(source="job.gpu_indices", child=serializers.IntegerField())
    submitted_at = serializers.DateTimeField(source="job.submitted_at")
    started_at = serializers.DateTimeField(source="job.started_at", allow_null=True)
    finished_at = serializers.DateTimeField(source="job.finished_at", allow_null=True)
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
    completed = QueueJobOut(
        many=True, help_text="with include_completed: finished jobs, the last to finish first"
    )
    pending_count = serializers.IntegerField(read_only=True)
    held_count = serializers.IntegerField(read_only=True)
    completed_count = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="null unless include_completed"
    )
    offset = serializers.IntegerField(read_only=True)
    limit = serializers.IntegerField(read_only=True)


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
            "allow_idle",
        ]


class TemplateAdminOut(TemplateOut):
    """A template as admins see and change it: TemplateOut and the fields only admins set."""

    class Meta(TemplateOut.Meta):
        fields = [
            *TemplateOut.Meta.fields,
            "max_time_limit_seconds",
            "default_env",
            "enabled",
            "batch_argv_template",
        ]


def _argv_field(help_text: str, **kwargs):
    # Elements are taken verbatim: blank elements and surrounding spaces are part of an argv.
    child = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=ARGV_ELEMENT_MAX)
    return serializers.ListField(child=child, max_length=ARGV_ITEMS_MAX, help_text=help_text, **kwargs)


def _env_field(help_text: str):
    child = serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=ENV_VALUE_MAX)
    return serializers.DictField(child=child, required=False, help_text=help_text)


@schema_rule(properties={"params_schema": {"type": "object"}})
class TemplateIn(StrictSerializer):
    """A template's fields (POST: name and argv_template needed; PATCH: any of them). The checks are the
    model's, as in the Django admin's form (scheduling/templates_admin.py)."""

    name = serializers.RegexField(
        r"^[-a-zA-Z0-9_]+\Z", max_length=100, help_text="a slug: letters, digits, - and _"
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    argv_template = _argv_field(
        min_length=1,
        help_text='the program (absolute path, or a name found on the server\'s PATH) and its arguments; "{param}" '
        'placeholders are filled from the parameters, e.g. ["/usr/bin/python3", "train.py", "--lr", "{lr}"]',
    )
    params_schema = serializers.JSONField(
        required=False, help_text="a JSON schema (an object) the parameters must satisfy"
    )
    default_gpu_count = serializers.IntegerField(required=False, min_value=0)
    default_time_limit_seconds = serializers.IntegerField(
        required=False,
        min_value=1,
        allow_null=True,
        help_text="a job's limit when its submit sets none (null: the level's)",
    )
    max_time_limit_seconds = serializers.IntegerField(
        required=False,
        min_value=1,
        allow_null=True,
        help_text="the longest limit a job may ask for (null: none)",
    )
    default_env = _env_field("environment every job of the template gets")
    allowed_env = _env_field(
        'names users may set, each with a regex for its whole value, e.g. {"NCCL_DEBUG": "INFO|WARN"}'
    )
    enabled = serializers.BooleanField(required=False, help_text="false: no new jobs (existing ones stay)")
    batchable = serializers.BooleanField(required=False)
    batch_key_params = serializers.ListField(child=serializers.CharField(), required=False, max_length=100)
    batch_window_seconds = serializers.IntegerField(required=False, min_value=0)
    batch_max_size = serializers.IntegerField(
        required=False, min_value=0, help_text="at least 2 when batchable"
    )
    batch_argv_template = _argv_field('runs a batch; "{manifest}" is its manifest\'s path', required=False)
    allow_idle = serializers.BooleanField(
        required=False, help_text="true: the idle_reclaim policy never warns or stops this template's jobs"
    )


class LogOut(serializers.Serializer):
    """One of three shapes: the tail by lines (`lines`, `truncated`), a follow (`offset`, `text`,
    `next_offset`, `size`, `finished`), or a window (a follow's fields and `kept_from`)."""

    job = serializers.IntegerField()
    lines = serializers.ListField(child=serializers.CharField(), required=False)
    truncated = serializers.BooleanField(required=False)
    offset = serializers.IntegerField(required=False)
    text = serializers.CharField(required=False)
    next_offset = serializers.IntegerField(required=False)
    size = serializers.IntegerField(required=False)
    kept_from = serializers.IntegerField(required=False)
    finished = serializers.BooleanField(required=False)


class LogMatchOut(serializers.Serializer):
    offset = serializers.IntegerField(help_text="the byte where the match starts")
    line_offset = serializers.IntegerField(help_text="the byte where `text` starts (its line's start)")
    column = serializers.IntegerField(help_text="the match's character index in `text`")
    text = serializers.CharField()


class LogSearchOut(serializers.Serializer):
    job = serializers.IntegerField()
    q = serializers.CharField()
    matches = LogMatchOut(many=True)
    next = serializers.IntegerField(allow_null=True, help_text="`from` for the next page; null at the end")
    size = serializers.IntegerField()


class ReasonIn(StrictSerializer):
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


class RejectIn(StrictSerializer):
    reason = serializers.CharField(max_length=300)


class PriorityIn(StrictSerializer):
    priority = serializers.IntegerField(min_value=-1000, max_value=1000)
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")


@schema_rule(
    anyOf=[{"required": ["priority"]}, {"required": ["before"]}, {"required": ["after"]}],
    **{"not": {"required": ["before", "after"]}},
)
class ReorderIn(StrictSerializer):
    job = serializers.IntegerField(min_value=1, max_value=BIG_INT_MAX)
    priority = serializers.IntegerField(min_value=-1000, max_value=1000, required=False)
    before = serializers.IntegerField(
        min_value=1, max_value=BIG_INT_MAX, required=False, help_text="place just before this job"
    )
    after = serializers.IntegerField(
        min_value=1, max_value=BIG_INT_MAX, required=False, help_text="place just after this job"
    )
    reason = serializers.CharField(max_length=300, required=False, allow_blank=True, default="")

    def validate(self, data):
        if "before" in data and "after" in data:
            raise serializers.ValidationError({"before": "give before or after, not both"})
        if not {"priority", "before", "after"} & data.keys():
            raise serializers.ValidationError({"priority": "nothing to do: give priority, before or after"})
        return data


class ConcurrencyIO(StrictSerializer):
    max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    user_max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)
    team_max_concurrent = serializers.IntegerField(min_value=0, required=False, allow_null=True)


@schema_rule(oneOf=[{"required": ["user"]}, {"required": ["team"]}])
class QuotaIn(StrictSerializer):
    user = serializers.SlugRelatedField(slug_field="username", queryset=User.objects.all(), required=False)
    team = serializers.SlugRelatedField(slug_field="name", queryset=Team.objects.all(), required=False)
    daily_gpu_seconds = serializers.IntegerField(
        min_value=0, max_value=BIG_INT_MAX, required=False, allow_null=True, default=None
    )
    weekly_gpu_seconds = serializers.IntegerField(
        min_value=0, max_value=BIG_INT_MAX, required=False, allow_null=True, default=None
    )

    def validate(self, data):
        if ("user" in data) == ("team" in data):
            raise serializers.ValidationError({"user": "give a user or a team"})
        return data


# Each type's config, as scheduling.policies checks it (a time zone the server does not know, or an
# off-peak window that starts where it ends: 422).
@schema_rule(
    oneOf=[
        {
            "properties": {
                "type": {"enum": [policy_type]},
                "config": {"type": "object", "additionalProperties": False, **oas30(schema)},
            },
            **({"required": ["type", "config"]} if "required" in schema else {}),
        }
        for policy_type, schema in POLICY_SCHEMAS.items()
    ]
)
class PolicySerializer(StrictInput, serializers.ModelSerializer):
    class Meta:
        model = SchedulingPolicy
        fields = ["id", "type", "config", "enabled", "updated_at"]
        read_only_fields = ["updated_at"]

    def validate(self, data):
        policy_type = data.get("type", self.instance.type if self.instance else None)
        config = data.get("config", self.instance.config if self.instance else {})
        data["config"] = validate_config(policy_type, config)  # DRF keeps a refusal's code
        return data


class BulkOut(serializers.Serializer):
    """The answer to a bulk submission or sweep."""

    sweep = SweepOut()
    jobs = BulkJobOut(many=True)
