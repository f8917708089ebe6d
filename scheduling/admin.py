"""Admin for jobs (with their read-only transition log), job templates, policies and quotas. Jobs are
shown to staff as their gpuq level allows (accounts.permissions); the rest is for gpuq admins only."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import JsonResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone

from accounts.admin import AdminsOnly
from accounts.permissions import can_administer, can_see_env, can_view_job, visible_jobs
from scheduling import retention, selectors, services, ticker
from scheduling.models import GpuQuota, Job, JobAudit, JobStateTransition, JobTemplate, SchedulingPolicy
from scheduling.states import TERMINAL
from scheduling.transitions import TransitionConflict


class TransitionInline(admin.TabularInline):
    model = JobStateTransition
    extra = 0
    can_delete = False
    fields = ["at", "from_status", "to_status", "attempt", "triggered_by", "reason"]
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        # obj: the job shown (None where Django asks about the inline itself; the page checked the job)
        return obj is None or can_view_job(request.user, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class AuditInline(admin.TabularInline):
    model = JobAudit
    extra = 0
    can_delete = False
    fields = ["at", "by", "action", "detail"]
    readonly_fields = fields

    def has_view_permission(self, request, obj=None):
        # obj: the job shown (None where Django asks about the inline itself; the page checked the job)
        return obj is None or can_view_job(request.user, obj)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
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
    actions = ["cancel_jobs", "approve_jobs", "reject_jobs", "pause_jobs", "resume_jobs", "set_priority"]
    # Status changes only through the services (one door); the admin shows, it does not edit.
    readonly_fields = [f.name for f in Job._meta.fields]

    # Staff see the jobs their level lets them see (leads their team's, others their own and those
    # shared with them), never another's env, and act only through the actions, i.e. the services.
    def get_queryset(self, request):
        jobs = super().get_queryset(request)
        if can_administer(request.user):
            return jobs
        return jobs.filter(pk__in=visible_jobs(request.user).values("pk"))

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_staff

    def has_view_permission(self, request, obj=None):
        return self.has_module_permission(request) and (obj is None or can_view_job(request.user, obj))

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return can_administer(request.user)

    def has_delete_permission(self, request, obj=None):
        # An active job is never deleted: cancel it (the status door) first.
        return can_administer(request.user) and (obj is None or obj.status in TERMINAL)

    def delete_model(self, request, obj):
        self.delete_queryset(request, Job.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        """Deletes go through retention (transitions archived, files removed); active jobs are refused."""
        ids = list(queryset.values_list("pk", flat=True))
        now = timezone.now()
        removed = retention.jobs_cleanup(finished_before=now, now=now, ids=ids)
        kept = len(ids) - removed.jobs
        if kept:
            self.message_user(
                request,
                f"{kept} job(s) not deleted: active jobs (cancel them first) and finished jobs that an "
                "active job depends on are kept.",
                messages.WARNING,
            )

    def get_fields(self, request, obj=None):
        fields = super().get_fields(request, obj)
        if obj is None or not can_see_env(request.user, obj):
            fields = [f for f in fields if f != "env"]
        return fields

    def get_urls(self):
        own = [
            path("queue/", self.admin_site.admin_view(self.queue_view), name="scheduling_job_queue"),
            path("queue/move/", self.admin_site.admin_view(self.move_view), name="scheduling_job_move"),
        ]
        return own + super().get_urls()

    def queue_view(self, request):
        """The waiting queue in order; admins drag a job to a new place (see static/gpuq/reorder.js)."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Waiting queue",
            "pending": selectors.queue().pending,
            "opts": self.model._meta,
            "can_move": can_administer(request.user),
        }
        return TemplateResponse(request, "admin/scheduling/job/queue.html", context)

    def move_view(self, request):
        """POST job, and before or after: move it there (taking the neighbour's priority if it differs),
        through the same services as the API; logged with the admin's name."""
        if request.method != "POST":
            return JsonResponse({"detail": "POST only"}, status=405)
        if not can_administer(request.user):  # before anything moves: a move may change a priority first
            return JsonResponse({"detail": "Only admins reorder the queue."}, status=403)
        try:
            job = Job.objects.get(pk=int(request.POST["job"]))
            side = "before" if request.POST.get("before") else "after"
            anchor = Job.objects.get(pk=int(request.POST[side]))
            if anchor.priority != job.priority:
                services.job_set_priority(
                    job=job, user=request.user, priority=anchor.priority, reason="dragged in the admin queue"
                )
            services.job_move(
                job=job, user=request.user, **{side: anchor}, reason="dragged in the admin queue"
            )
        except (KeyError, ValueError, Job.DoesNotExist):
            return JsonResponse({"detail": "give job and before (or after), as job ids"}, status=400)
        except PermissionDenied as error:
            return JsonResponse({"detail": str(error)}, status=403)
        except ValidationError as error:
            return JsonResponse({"detail": "; ".join(error.messages)}, status=400)
        # The dragging admin waits for the tick that places the job (as `POST /api/v1/queue/process`).
        ticker.run(force=True, wait=True)
        order = [entry.job.pk for entry in selectors.queue().pending]
        return JsonResponse({"order": order})

    @admin.action(description="Cancel selected jobs")
    def cancel_jobs(self, request, queryset):
        why = f"cancelled in the admin by {request.user}"
        _each(self, request, queryset, services.job_cancel, "cancelled or asked to stop", reason=why)

    @admin.action(description="Approve selected (blocked) jobs")
    def approve_jobs(self, request, queryset):
        why = f"approved in the admin by {request.user}"
        _each(self, request, queryset, services.job_approve, "approved", reason=why)

    @admin.action(description="Reject selected (blocked) jobs, with a reason…")
    def reject_jobs(self, request, queryset):
        reason = self._ask(request, queryset, "reject", "Reason (the owner sees it)", "text")
        if isinstance(reason, TemplateResponse):
            return reason
        _each(self, request, queryset, services.job_reject, "rejected", reason=reason)

    @admin.action(description="Set the priority of selected jobs…")
    def set_priority(self, request, queryset):
        value = self._ask(
            request, queryset, "set_priority", "New priority (Urgent 30 … Background -10)", "number"
        )
        if isinstance(value, TemplateResponse):
            return value
        try:
            priority = int(value)
        except ValueError:
            self.message_user(request, "The priority must be a whole number.", messages.ERROR)
            return None
        why = f"set in the admin by {request.user}"
        _each(
            self, request, queryset, services.job_set_priority, "reprioritised", priority=priority, reason=why
        )

    def _ask(self, request, queryset, action: str, label: str, kind: str):
        """An action's one input: the form page first, then the value it posted (blank is asked again)."""
        value = request.POST.get("value", "").strip()
        if "apply" in request.POST and value:
            return value
        context = {
            **self.admin_site.each_context(request),
            "title": label,
            "jobs": queryset,
            "action": action,
            "label": label,
            "kind": kind,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/scheduling/job/action_form.html", context)

    @admin.action(description="Pause selected jobs")
    def pause_jobs(self, request, queryset):
        why = f"paused in the admin by {request.user}"
        _each(self, request, queryset, services.job_pause, "paused or asked to stop", reason=why)

    @admin.action(description="Resume selected (paused) jobs")
    def resume_jobs(self, request, queryset):
        _each(self, request, queryset, services.job_resume, "resumed")


@admin.register(JobTemplate)
class JobTemplateAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = [
        "name",
        "default_gpu_count",
        "default_time_limit_seconds",
        "max_time_limit_seconds",
        "batchable",
        "allow_idle",
        "enabled",
    ]
    search_fields = ["name", "description"]


@admin.register(SchedulingPolicy)
class SchedulingPolicyAdmin(AdminsOnly, admin.ModelAdmin):
    """Policies are checked on save: a bad config is shown in the form, not stored."""

    list_display = ["type", "enabled", "config", "updated_at"]
    list_editable = ["enabled"]

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        services._after_queue_change()


@admin.register(GpuQuota)
class GpuQuotaAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["__str__", "user", "team", "daily_gpu_seconds", "weekly_gpu_seconds"]
    search_fields = ["user__username", "team__name"]
    autocomplete_fields = ["user", "team"]


from scheduling import simulations_admin  # noqa: E402, F401  (registers the Simulation admin)
