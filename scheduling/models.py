"""Jobs, job templates and the append-only log of status transitions."""

from django.conf import settings
from django.db import models
from django.utils import timezone

from scheduling.states import Status


class WaitReason(models.TextChoices):
    """Why a job is not running yet, as the planner says (Slurm's squeue reasons)."""

    NONE = "", "—"
    PRIORITY = "priority", "Behind higher-priority jobs"
    RESOURCES = "resources", "Waiting for free GPUs"


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
    enabled = models.BooleanField(default=True)

    def __str__(self) -> str:
        return self.name

    def clean(self):
        from scheduling.templating import check_template

        check_template(self.argv_template, self.params_schema)


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

    # Written only by scheduling.transitions.transition().
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, editable=False)
    wait_reason = models.CharField(max_length=32, choices=WaitReason.choices, default="", blank=True)
    wait_detail = models.CharField(max_length=300, default="", blank=True)

    attempt = models.PositiveIntegerField(default=1)
    max_attempts = models.PositiveIntegerField(default=3)
    time_limit_seconds = models.PositiveIntegerField(null=True, blank=True)

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
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    cancel_requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        indexes = [
            models.Index(fields=["status", "priority", "submitted_at"], name="job_queue_idx"),
            models.Index(fields=["owner", "status"], name="job_owner_status_idx"),
        ]
        permissions = [("submit_raw_command", "Can submit raw commands (argv) instead of templates")]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name or self.argv[:1]}"


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
