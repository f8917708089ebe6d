"""Admin for jobs (with their read-only transition log) and job templates."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from scheduling import services
from scheduling.models import GpuQuota, Job, JobAudit, JobStateTransition, JobTemplate, SchedulingPolicy
from scheduling.transitions import TransitionConflict


class TransitionInline(admin.TabularInline):
    model = JobStateTransition
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "attempt", "triggered_by", "reason"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class AuditInline(admin.TabularInline):
    model = JobAudit
    extra = 0
    can_delete = False
    fields = ["at", "by", "action", "detail"]
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def _each(modeladmin, request, queryset, service, done_word, **kwargs):
    """Apply one service to each selected job; report what worked and why the rest did not."""
    done = 0
    for job in queryset:
        try:
            service(job=job, user=request.user, **kwargs)
            done += 1
        except (ValidationError, PermissionDenied, TransitionConflict) as error:
            modeladmin.message_user(request, f"job {job.pk}: {error}", messages.WARNING)
    modeladmin.message_user(request, f"{done} job(s) {done_word}.")


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id",
        "name",
        "owner",
        "team",
        "status",
        "priority",
        "gpu_count",
        "node",
        "attempt",
        "wait_reason",
        "submitted_at",
    ]
    list_filter = ["status", "wait_reason", "node", "team", "owner"]
    search_fields = ["=id", "name", "owner__username", "error"]
    list_select_related = ["owner", "team", "node"]
    date_hierarchy = "submitted_at"
    inlines = [TransitionInline, AuditInline]
    actions = ["cancel_jobs", "approve_jobs", "pause_jobs", "resume_jobs"]
    # Status changes only through the services (one door); the admin shows, it does not edit.
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        why = f"cancelled in the admin by {request.user}"
        _each(self, request, queryset, services.job_cancel, "cancelled or asked to stop", reason=why)

    @admin.action(description="Approve selected (blocked) jobs")
    def approve_jobs(self, request, queryset):
        why = f"approved in the admin by {request.user}"
        _each(self, request, queryset, services.job_approve, "approved", reason=why)

    @admin.action(description="Pause selected jobs")
    def pause_jobs(self, request, queryset):
        why = f"paused in the admin by {request.user}"
        _each(self, request, queryset, services.job_pause, "paused or asked to stop", reason=why)

    @admin.action(description="Resume selected (paused) jobs")
    def resume_jobs(self, request, queryset):
        _each(self, request, queryset, services.job_resume, "resumed")


@admin.register(JobTemplate)
class JobTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "default_gpu_count", "default_time_limit_seconds", "batchable", "enabled"]
    search_fields = ["name", "description"]


@admin.register(SchedulingPolicy)
class SchedulingPolicyAdmin(admin.ModelAdmin):
    """Policies are checked on save: a bad config is shown in the form, not stored."""

    list_display = ["type", "enabled", "config", "updated_at"]
    list_editable = ["enabled"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services._after_queue_change()


@admin.register(GpuQuota)
class GpuQuotaAdmin(admin.ModelAdmin):
    list_display = ["__str__", "user", "team", "daily_gpu_seconds", "weekly_gpu_seconds"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]
