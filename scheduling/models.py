"""Jobs, job templates and the append-only log of status transitions."""

from django.conf import settings
from django.db import models
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase, UserObjectPermissionBase

from scheduling.reasons import LABELS
from scheduling.states import Status

# Why a job waits: the values and labels of scheduling.reasons, the one vocabulary (also the planner's).
WaitReason = models.TextChoices(
    "WaitReason", [(reason.name, (reason.value, label)) for reason, label in LABELS.items()]
)


class StopRequest(models.TextChoices):
    """What a running job's executor is asked to do: stop it, then record this outcome."""

    NONE = "", "—"
    CANCEL = "cancel", "Cancel"
    PAUSE = "pause", "Pause"
    PREEMPT = "preempt", "Preempt"
    IDLE = "idle", "Stop: GPUs idle"  # idle-GPU reclaim (scheduling.reclaim): ends cancelled


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
    default_time_limit_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="A job's limit when its submit sets none (before the level's)."
    )
    max_time_limit_seconds = models.PositiveIntegerField(
        null=True, blank=True, help_text="The longest limit a job of this template may ask for."
    )
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
    allow_idle = models.BooleanField(
        default=False,
        help_text="Its jobs may hold GPUs they leave idle: the idle_reclaim policy neither warns nor stops them.",
    )

    def __str__(self) -> str:
        return self.name

    def clean(self):
        """Check the template and resolve its programs to absolute paths (a job's PATH cannot change them)."""
        from accounts.models import check_time_limits
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
        check_time_limits(self.default_time_limit_seconds, self.max_time_limit_seconds)
        for field in ("argv_template", "batch_argv_template", "default_env"):
            refuse_nul(field, getattr(self, field))


class Sweep(models.Model):
    """A job array (Slurm's `--array`): jobs submitted in one request, as a list or as a template over a
    grid or list of parameter sets, watched, cancelled and depended on as one. Each of its jobs points
    to it with its index (`Job.sweep`, `Job.array_index`) and is named `name[index]`. A sweep is one row
    per bulk submission and lives as long as its jobs."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="sweeps")
    team = models.ForeignKey(
        "accounts.Team", null=True, blank=True, on_delete=models.SET_NULL, related_name="sweeps"
    )
    name = models.CharField(max_length=200, blank=True, default="")
    template = models.ForeignKey(JobTemplate, null=True, blank=True, on_delete=models.PROTECT)
    size = models.PositiveIntegerField()
    submitted_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"sweep {self.pk} {self.name} ({self.size} jobs)"


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
    gpu_count = models.PositiveIntegerField(default=1)  # in all: nodes × GPUs per node
    # A gang job runs one process on each of `nodes` nodes at once, gpu_count / nodes GPUs each
    # (scheduling.gang); 1 for every other job.
    nodes = models.PositiveSmallIntegerField(default=1)
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
    # The sweep (job array) the job was submitted in, and its index there.
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs")
    array_index = models.PositiveIntegerField(null=True, blank=True)
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
    # The start the tick first estimated for it, set once (scheduling.first_estimates): analytics compare
    # it with `started_at` (the estimate error users judge).
    first_estimated_start = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    exit_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    log_path = models.CharField(max_length=500, blank=True, default="")
    progress = models.JSONField(default=dict, blank=True)

    # Which attempt is current: its node and GPUs (read by the planner's snapshot and the queue) and its
    # lease token, which fences every status change an executor makes. Everything else about an
    # execution (heartbeat, process identity, end) lives on its Attempt row.
    node = models.ForeignKey(
        "gpus.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="jobs"
    )
    gpu_indices = models.JSONField(default=list, blank=True)
    lease_token = models.CharField(max_length=32, blank=True, default="")
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
            # The waiting set (pending, not a batch member) and the held list read both columns alone.
            models.Index(fields=["status", "batch_role"], name="job_status_batch_idx"),
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
    def gpus_per_node(self) -> int:
        return self.gpu_count // max(1, self.nodes)

    @property
    def needs(self):
        from gpus.placement import Needs

        return Needs.of(
            self.min_gpu_memory_mb, self.gpu_model, self.device_ids, self.node_labels, self.target
        )


class Attempt(models.Model):
    """One execution of a job: dispatched to a node's GPUs under a lease token, claimed by an executor,
    kept alive by heartbeats (database clock), ended once. Written only through transition() (open,
    claim, close) and the executor's heartbeat, which renews `heartbeat_at` while the row is open."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="attempts")
    number = models.PositiveIntegerField()
    node = models.ForeignKey("gpus.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    gpu_indices = models.JSONField(default=list, blank=True)
    lease_token = models.CharField(max_length=32, db_index=True)
    # The process: boot id + pid + start time together name it (a pid alone may be recycled).
    boot_id = models.CharField(max_length=64, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    pid_start_time = models.CharField(max_length=32, blank=True, default="")
    # Times come from the database's clock (Now()), never a machine's own.
    dispatched_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)  # claimed by its executor: the lease starts
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    exit_signal = models.IntegerField(null=True, blank=True)  # the signal that ended the process
    outcome = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["ended_at", "heartbeat_at"], name="attempt_open_idx")]

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.number}"

    @property
    def open(self) -> bool:
        return self.ended_at is None


class AttemptPart(models.Model):
    """One node's share of an attempt of a gang job (scheduling.gang): its rank, node and GPUs, the process
    its node's executor runs, that part's heartbeat (database clock) and how it ended. The attempt row stays
    the one record of the try; its parts are closed with it."""

    attempt = models.ForeignKey(Attempt, on_delete=models.CASCADE, related_name="parts")
    rank = models.PositiveSmallIntegerField()  # NODE_RANK; rank 0 holds the rendezvous (MASTER_ADDR/PORT)
    node = models.ForeignKey("gpus.Node", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    gpu_indices = models.JSONField(default=list, blank=True)
    address = models.CharField(max_length=255, blank=True, default="")  # the node's GPUQ_NODE_ADDRESS
    port = models.PositiveIntegerField(null=True, blank=True)  # rank 0: MASTER_PORT, chosen at its claim
    boot_id = models.CharField(max_length=64, blank=True, default="")
    pid = models.IntegerField(null=True, blank=True)
    pid_start_time = models.CharField(max_length=32, blank=True, default="")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=Status.choices, blank=True, default="")
    reason = models.CharField(max_length=500, blank=True, default="")
    result = models.JSONField(default=dict, blank=True)  # the part's executor outcome, for the last part
    log_path = models.CharField(max_length=500, blank=True, default="")
    log_tail = models.TextField(blank=True, default="")  # the end of its log (ranks > 0 ship no log)

    class Meta:
        ordering = ["attempt_id", "rank"]
        constraints = [models.UniqueConstraint(fields=["attempt", "rank"], name="attempt_part_unique_rank")]

    def __str__(self) -> str:
        return f"job {self.attempt.job_id} attempt {self.attempt.number} rank {self.rank}"


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
    RETENTION = "retention", "Retention of finished jobs"
    IDLE_RECLAIM = "idle_reclaim", "Idle-GPU reclaim"
    ORDERING = "ordering", "Order within a priority"


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
    transition or progress, a node's status), written in the transaction of the change. `seq` gives the
    commit order (scheduling.live explains how) and a client that reconnects resumes after the last one it
    saw. Payloads never hold argv or the environment; progress and reasons go only to those who may read
    the job (events.for_receiver)."""

    class Kind(models.TextChoices):
        JOB = "job", "Job"  # a transition or a new job: the job's queue fields
        PROGRESS = "progress", "Progress"
        NODE = "node", "Node"
        QUEUE = "queue", "Queue"  # waiting reasons or order changed: refetch the queue
        # Retention's marker: every event before this id was pruned (scheduling.housekeeping).
        PRUNED = "pruned", "Pruned"

    at = models.DateTimeField(default=timezone.now)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    # Not a foreign key: events outlive nothing. Indexed for retention, which removes a job's events with it.
    job_id = models.BigIntegerField(null=True, blank=True, db_index=True)
    data = models.JSONField(default=dict)
    # The event's place in commit order, set by the database as the writing transaction commits (the
    # trigger of migration 0012; None until then): what readers and clients count by, never `id`.
    seq = models.BigIntegerField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"event {self.id}: {self.kind} {self.job_id or ''}"

    def as_message(self) -> dict:
        return {
            "id": self.seq,
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
    """The `Idempotency-Key` of a submit: a retry of it by the same user returns this job (or, for a bulk
    submit, this sweep) instead of creating another. Written in the submit's own transaction; kept
    GPUQ_IDEMPOTENCY_HOURS."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    request_hash = models.CharField(max_length=64)  # SHA-256 of the request body: the same key, same body
    job = models.ForeignKey(Job, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    sweep = models.ForeignKey(Sweep, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "key"], name="idempotency_key_per_user"),
            models.CheckConstraint(
                condition=models.Q(job__isnull=False, sweep__isnull=True)
                | models.Q(job__isnull=True, sweep__isnull=False),
                name="idempotency_key_for_job_or_sweep",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key} → {f'job {self.job_id}' if self.job_id else f'sweep {self.sweep_id}'}"


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


class TickState(models.Model):
    """The one row that coalesces ticks (scheduling.ticker): every change that may let a job start adds
    one to `asked` as it commits (SQLite: in its transaction; PostgreSQL: just after); a tick records in `done` the `asked` it started from, so a ticker
    woken for asks an earlier tick already covered does nothing."""

    asked = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    ticked_at = models.DateTimeField(null=True, blank=True)
    # How long ticks and the planner inside them took: {"tick": {...}, "plan": {...}}, each a histogram
    # {"buckets": [counts per metrics.DURATION_BUCKETS, +Inf last], "sum": s, "count": n, "last": s}
    # written by the ticker that holds the lock (scheduling.ticker), read by /metrics.
    durations = models.JSONField(default=dict, blank=True)

    def __str__(self) -> str:
        return f"ticks asked {self.asked}, done {self.done}"


class StoredPlan(models.Model):
    """The last tick's plan, one row rewritten by each tick: what every read of the queue shows instead
    of planning again (scheduling.listing). Waiting reasons live on the jobs (`wait_reason`)."""

    computed_at = models.DateTimeField()
    order = models.JSONField(default=list)  # waiting job ids in queue order, position 1 first
    # job id (as text) -> [expected start, latest start] as POSIX seconds (null: unknown / no bound)
    estimates = models.JSONField(default=dict)
    estimated_at = models.DateTimeField(null=True, blank=True)  # when `estimates` were simulated
    # [{"job": id, "node": name, "start": POSIX seconds or null, "gpus": count}]
    reservations = models.JSONField(default=list)

    def __str__(self) -> str:
        return f"plan of {self.computed_at:%H:%M:%S}: {len(self.order)} waiting"


class RelayReport(models.Model):
    """What one web process's live relay (scheduling.relay) saw: the longest time between an event being
    written and the relay handing it to its clients, over the events of its latest report period, so
    /metrics shows every process's lag whichever process is scraped. Rewritten at most every
    GPUQ_RELAY_REPORT_SECONDS while events flow; rows not rewritten for an hour are removed."""

    relay = models.CharField(max_length=200, unique=True)  # host:pid
    lag_seconds = models.FloatField()
    events = models.PositiveIntegerField()  # relayed in that period
    reported_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"relay {self.relay}: {self.lag_seconds:.3f} s"


class IdleWatch(models.Model):
    """Idle-GPU reclaim's memory of one running job whose GPUs read idle (scheduling.reclaim): since when,
    and whether its owner was warned and it was stopped or reported. A row exists only while the job's
    latest readings are idle: a busy reading deletes it, and so does the job leaving `running` (the next
    check removes rows of jobs no longer running). Kept in the database so a node restart forgets
    nothing."""

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="idle_watch")
    attempt = models.PositiveIntegerField()  # a new attempt starts afresh
    idle_since = models.DateTimeField()
    utilization_percent = models.PositiveSmallIntegerField()  # the latest reading (busiest of its GPUs)
    gpus = models.PositiveIntegerField(default=1)  # how many GPUs it holds idle
    warned_at = models.DateTimeField(null=True, blank=True)
    acted_at = models.DateTimeField(null=True, blank=True)  # stopped (asked) or reported

    def __str__(self) -> str:
        return f"job {self.job_id} idle since {self.idle_since:%H:%M:%S}"


class Simulation(models.Model):
    """One what-if run of the simulator (scheduling.simulations): its input, progress and the comparison
    table it produced. Removed after GPUQ_SIMULATION_KEEP_DAYS by the daily retention run."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.QUEUED)
    progress = models.FloatField(default=0.0)  # 0..1
    source = models.CharField(max_length=300)  # "last 7 days of history" or the trace's name
    days = models.PositiveIntegerField(null=True, blank=True)
    trace = models.TextField(blank=True, default="")  # the trace CSV until the run has read it
    policy_sets = models.JSONField(default=dict)  # name -> {policy type: config}, as submitted
    result = models.JSONField(null=True, blank=True)  # scheduling.simulations.run's answer
    error = models.TextField(blank=True, default="")

    def __str__(self) -> str:
        return f"simulation {self.pk} ({self.source}): {self.status}"


class MetricPoint(models.Model):
    """One point of a time series of one attempt of a job: a number from its progress file (`loss`,
    `accuracy`, …) or a reading of one of its GPUs (`gpu0.utilization_percent`). Bounded per series by
    GPUQ_JOB_METRICS_MAX_POINTS (scheduling.timeseries thins a full series); removed with the job."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="+")
    attempt = models.PositiveIntegerField()
    series = models.CharField(max_length=100)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["job", "attempt", "series", "at"], name="metricpoint_series_idx")]

    def __str__(self) -> str:
        return f"job {self.job_id} attempt {self.attempt} {self.series}={self.value:g}"
