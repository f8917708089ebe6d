"""Jobs, job templates and the append-only log of status transitions."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from scheduling.states import Status


class WaitReason(models.TextChoices):
    """Why a job is not running yet, as the planner says (Slurm's squeue reasons). The values are the
    planner's own (scheduling.planner.Reason); this mirror gives them labels for the pages and admin."""

    NONE = "", "—"
    PRIORITY = "priority", "Behind higher-priority jobs"
    RESOURCES = "resources", "Waiting for free GPUs"
    GLOBAL_LIMIT = "global_limit", "Global concurrency limit reached"
    USER_LIMIT = "user_limit", "Owner's concurrency limit reached"
    TEAM_LIMIT = "team_limit", "Team's concurrency limit reached"
    QUOTA = "quota", "GPU-time quota used up"
    OFF_PEAK = "off_peak", "Off-peak only: waits for the off-peak window"
    BEGIN_TIME = "begin_time", "Scheduled to start later"
    APPROVAL = "approval", "Awaiting approval"
    DEPENDENCY = "dependency", "Waiting for other jobs to complete"
    CONFLICT = "conflict", "A resource it needs is held by a running job"
    SERIAL = "serial", "Serial mode: one job at a time"
    PREEMPTING = "preempting", "Lower-priority jobs are being stopped for it"
    PAUSED = "paused", "Paused"
    QUEUE_PAUSED = "queue_paused", "The queue is paused"


class StopRequest(models.TextChoices):
    """What a running job's executor is asked to do: stop it, then record this outcome."""

    NONE = "", "—"
    CANCEL = "cancel", "Cancel"
    PAUSE = "pause", "Pause"
    PREEMPT = "preempt", "Preempt"


class JobTemplate(models.Model):
    """An admin-defined command. Parameters fill argv elements; they never become shell text."""

    name = models.SlugField(max_length=100, unique=True)
    description = models.TextField(blank=True, default="")
    argv_template = models.JSONField(
        help_text='A list of strings; "{param}" placeholders are filled from the parameters, '
        'e.g. ["python", "train.py", "--lr", "{lr}"].'
    )
    params_schema = models.JSONField(
        default=dict, blank=True, help_text="A JSON schema the parameters must satisfy."
    )
    default_gpu_count = models.PositiveIntegerField(default=1)
    default_time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    default_env = models.JSONField(default=dict, blank=True)
    allowed_env = models.JSONField(
        default=dict,
        blank=True,
        help_text="Environment names this template's users may set, each with a regex its value must match "
        '(whole value), e.g. {"WANDB_PROJECT": "[a-z0-9-]{1,64}", "NCCL_DEBUG": "INFO|WARN"}. Names that '
        "change which program runs or what it loads (PATH, LD_*, PYTHON*, ...) cannot be listed.",
    )
    enabled = models.BooleanField(default=True)
    # Batching (seed 003): waiting jobs of this template with equal key parameters, arriving within the
    # window, run together as one process of `batch_argv_template`, which reads the manifest of members.
    batchable = models.BooleanField(default=False)
    batch_key_params = models.JSONField(
        default=list, blank=True, help_text='Parameters that must be equal to batch jobs, e.g. ["num_steps"].'
    )
    batch_window_seconds = models.PositiveIntegerField(default=30)
    batch_max_size = models.PositiveIntegerField(default=8)
    batch_argv_template = models.JSONField(
        default=list,
        blank=True,
        help_text='Runs a batch; "{manifest}" is the path of its JSON manifest, key parameters may appear, '
        'e.g. ["python", "infer.py", "--batch", "{manifest}"].',
    )

    def __str__(self) -> str:
        return self.name

    def clean(self):
        """Check the template and resolve its programs to absolute paths (a job's PATH cannot change them)."""
        from scheduling.environment import check_allowed_env, refuse_nul, resolve_program
        from scheduling.templating import check_batching, check_template

        check_template(self.argv_template, self.params_schema)
        self.argv_template[0] = resolve_program(self.argv_template, field="argv_template")
        if self.batchable:
            check_batching(self)
            self.batch_argv_template[0] = resolve_program(
                self.batch_argv_template, field="batch_argv_template"
            )
        check_allowed_env(self.allowed_env)
        for field in ("argv_template", "batch_argv_template", "default_env"):
            refuse_nul(field, getattr(self, field))


class Job(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="jobs")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    name = models.CharField(max_length=200, blank=True, default="")
    template = models.ForeignKey(JobTemplate, null=True, blank=True, on_delete=models.PROTECT)
    params = models.JSONField(default=dict, blank=True)
    argv = models.JSONField()
    env = models.JSONField(default=dict, blank=True)
    gpu_count = models.PositiveIntegerField(default=1)
    priority = models.IntegerField(default=10)
    # FIFO key within a priority: the submit time as a number, moved by operators to reorder.
    queue_order = models.FloatField(default=0.0)
    start_after = models.DateTimeField(null=True, blank=True)
    off_peak_only = models.BooleanField(default=False)
    depends_on = models.ManyToManyField("self", symmetrical=False, blank=True, related_name="dependents")
    resources = models.JSONField(
        default=list, blank=True, help_text='Held exclusively, e.g. ["model:flux-dev"].'
    )
    preemptible = models.BooleanField(default=False)
    # Batching: jobs of a batchable template wait "collecting" for companions with the same key, then one
    # becomes the "leader" (it holds the GPUs and runs the batch) and the others its "member"s.
    batch_key = models.CharField(max_length=64, blank=True, default="", db_index=True)
    batch_role = models.CharField(
        max_length=10,
        blank=True,
        default="",
        choices=[("", "alone"), ("collecting", "collecting"), ("leader", "leader"), ("member", "member")],
    )
    batch_leader = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="batch_members"
    )
    # Placement: what the job asks of its GPUs and node beyond their number (gpus.placement.Needs).
    min_gpu_memory_mb = models.PositiveIntegerField(null=True, blank=True)
    gpu_model = models.CharField(max_length=100, blank=True, default="", help_text='A glob, e.g. "A100*".')
    device_ids = models.JSONField(default=list, blank=True, help_text="These exact GPU indices.")
    node_labels = models.JSONField(default=dict, blank=True, help_text='Globs, e.g. {"gpu_type": "a100*"}.')
    target = models.CharField(
        max_length=8, default="auto", choices=[("auto", "auto"), ("local", "local"), ("worker", "worker")]
    )

    # Written only by scheduling.transitions.transition().
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    wait_reason = models.CharField(max_length=32, choices=WaitReason.choices, default="", blank=True)
    wait_detail = models.CharField(max_length=300, default="", blank=True)

    attempt = models.PositiveIntegerField(default=1)  # every run is an attempt (requeue, pause, preempt: + 1)
    faults = models.PositiveIntegerField(default=0)  # attempts lost: dead executor or node, retried failure
    max_attempts = models.PositiveIntegerField(
        default=3
    )  # attempts that may end in a fault, this one included
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)
    stall_timeout_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="End the job when neither output nor progress changes this long."
    )

    submitted_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    log_path = models.CharField(max_length=500, blank=True, default="")
    progress = models.JSONField(default=dict, blank=True)

    # Where the current (or last) attempt runs, and its lease: the fencing token of the attempt,
    # the executor's heartbeat, and the identity of the child process (boot id, pid, start time).
    node = models.ForeignKey(
        "gpus.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    gpu_indices = models.JSONField(default=list, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    boot_id = models.CharField(max_length=64, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    pid_start_time = models.CharField(max_length=32, blank=True, default="")
    stop_request = models.CharField(max_length=16, choices=StopRequest.choices, default="", blank=True)
    stop_requested_at = models.DateTimeField(null=True, blank=True)
    stop_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    stop_reason = models.CharField(max_length=300, blank=True, default="")

    class Meta:
        indexes = [
            models.Index(fields=["status", "priority", "submitted_at"], name="job_queue_idx"),
            models.Index(fields=["owner", "status"], name="job_owner_status_idx"),
        ]
        permissions = [
            ("submit_raw_command", "Can submit raw commands (argv) instead of templates"),
            ("act_on_job", "Can cancel, pause, resume and reprioritise the job (shared per job)"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name or self.argv[:1]}"

    def save(self, *args, **kwargs):
        if not self.queue_order:
            self.queue_order = self.submitted_at.timestamp()
        super().save(*args, **kwargs)

    @property
    def needs(self):
        from gpus.placement import Needs

        return Needs.of(
            self.min_gpu_memory_mb, self.gpu_model, self.device_ids, self.node_labels, self.target
        )


class JobStateTransition(models.Model):
    """One status change of one job: the append-only audit log and the event stream."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    to_status = models.CharField(max_length=16, choices=Status.choices)
    attempt = models.PositiveIntegerField(default=1)
    at = models.DateTimeField(default=timezone.now)
    triggered_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.from_status or '∅'} → {self.to_status}"


class JobAudit(models.Model):
    """Changes to a job that are not status changes (priority, position), with who and why."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="audit")
    at = models.DateTimeField(default=timezone.now)
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=32)
    detail = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.action} {self.detail}"


class PolicyType(models.TextChoices):
    CONCURRENCY = "concurrency", "Concurrency limits"
    FAIR_SHARE = "fair_share", "Fair share"
    AGEING = "ageing", "Ageing (starvation prevention)"
    QUOTA = "quota", "Quota windows"
    OFF_PEAK = "off_peak", "Off-peak window"
    APPROVAL = "approval", "Approval rules"
    SERIAL = "serial", "Serial mode"
    EXPIRY = "expiry", "Expiry of waiting jobs"
    BACKFILL = "backfill", "Backfill"
    PREEMPTION = "preemption", "Preemption"
    QUEUE_PAUSE = "queue_pause", "Queue paused"
    RETRY = "retry", "Retries of failed jobs"
    WATCHDOG = "watchdog", "Watchdog for stalled jobs"


class SchedulingPolicy(models.Model):
    """One policy, editable by operators: its type, a JSON config checked on save, and a switch."""

    type = models.CharField(max_length=32, choices=PolicyType.choices, unique=True)
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "scheduling policies"

    def __str__(self) -> str:
        return f"{self.get_type_display()} ({'on' if self.enabled else 'off'})"

    def save(self, *args, **kwargs):
        self.full_clean()
        super().save(*args, **kwargs)

    def clean(self):
        from scheduling.policies import validate_config

        self.config = validate_config(self.type, self.config)


class GpuQuota(models.Model):
    """Daily and weekly GPU-seconds for one user or one team; an empty limit is unlimited."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="gpu_quota"
    )
    team = models.OneToOneField(
        "accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="gpu_quota"
    )
    daily_gpu_seconds = models.PositiveBigIntegerField(null=True, blank=True)
    weekly_gpu_seconds = models.PositiveBigIntegerField(null=True, blank=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(user__isnull=False, team__isnull=True)
                | models.Q(user__isnull=True, team__isnull=False),
                name="quota_for_user_or_team",
            )
        ]

    def __str__(self) -> str:
        return f"quota of {self.user or self.team}"


class Event(models.Model):
    """The live stream that pages follow over websockets: one row per change they show (a job's
    transition or progress, a node's status), written in the transaction of the change, so ids give the
    order and a client that reconnects resumes after the last id it saw. Payloads never hold argv or the
    environment; progress and reasons go only to those who may read the job (events.for_receiver)."""

    class Kind(models.TextChoices):
        JOB = "job", "Job"  # a transition or a new job: the job's queue fields
        PROGRESS = "progress", "Progress"
        NODE = "node", "Node"
        QUEUE = "queue", "Queue"  # waiting reasons or order changed: refetch the queue

    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    job_id = models.BigIntegerField(null=True, blank=True)  # not a foreign key: events outlive nothing
    data = models.JSONField(default=dict)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"event {self.id}: {self.kind} {self.job_id or ''}"

    def as_message(self) -> dict:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "kind": self.kind,
            "job": self.job_id,
            "data": self.data,
        }


class JobUserObjectPermission(UserObjectPermissionBase):
    """A job shared with a user (django-guardian, with a real foreign key: list queries stay indexed)."""

    content_object = models.ForeignKey(Job, on_delete=models.CASCADE)


class JobGroupObjectPermission(GroupObjectPermissionBase):
    content_object = models.ForeignKey(Job, on_delete=models.CASCADE)


class IdempotencyKey(models.Model):
    """The `Idempotency-Key` of a submit: a retry of it by the same user returns this job instead of
    creating another. Written in the job's own transaction; kept GPUQ_IDEMPOTENCY_HOURS."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)  # SHA-256 of the request body: the same key, same body
    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user")]

    def __str__(self) -> str:
        return f"{self.key} → job {self.job_id}"


class LogChunk(models.Model):
    """A piece of a job's output as its node shipped it (scheduling.logship): the server side's copy of
    the log, so every node's logs are read with no shared folder. `offset` counts bytes in the job's
    stored log, across attempts; only the last GPUQ_LOG_DB_MAX_BYTES are kept."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="log_chunks")
    attempt = models.PositiveIntegerField()
    offset = models.BigIntegerField()
    size = models.PositiveIntegerField()
    data = models.BinaryField()

    class Meta:
        # One writer per position: a stale attempt that writes where the current one did is refused.
        constraints = [models.UniqueConstraint(fields=["job", "offset"], name="log_chunk_position")]

    def __str__(self) -> str:
        return f"job {self.job_id} bytes {self.offset}–{self.offset + self.size}"
