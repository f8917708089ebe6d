"""Admin for jobs (with their read-only transition log) and job templates."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError

from scheduling import services
from scheduling.models import Job, JobStateTransition, JobTemplate
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
    inlines = [TransitionInline]
    actions = ["cancel_jobs"]
    # Status changes only through the services (one door); the admin shows, it does not edit.
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        done = 0
        for job in queryset:
            try:
                services.job_cancel(
                    job=job, user=request.user, reason=f"cancelled in the admin by {request.user}"
                )
                done += 1
            except (ValidationError, PermissionDenied, TransitionConflict) as error:
                self.message_user(request, f"job {job.pk}: {error}", messages.WARNING)
        self.message_user(request, f"{done} job(s) cancelled or asked to stop.")


@admin.register(JobTemplate)
class JobTemplateAdmin(admin.ModelAdmin):
    list_display = ["name", "default_gpu_count", "default_time_limit_seconds", "enabled"]
    search_fields = ["name", "description"]
