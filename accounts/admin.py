"""Admin for teams, user profiles and API tokens; and the rule that the admin obeys gpuq's levels, not
Django's model permissions: only gpuq admins (superusers or level admin) see or change anything here
but jobs, whose admin shows staff only the jobs their level lets them see (scheduling/admin.py)."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiToken, LevelLimits, Profile, Team
from accounts.permissions import can_administer
from scheduling.models import GpuQuota


class AdminsOnly:
    """Mixin for gpuq's own ModelAdmins and inlines: gpuq admins see and change these rows; a staff
    member of any other level gets a 403, whatever Django model permissions they hold. A subclass may
    still refuse more (e.g. `has_add_permission` returning False)."""

    def has_module_permission(self, request):
        return can_administer(request.user)

    def has_view_permission(self, request, obj=None):
        return can_administer(request.user)

    def has_add_permission(self, request, obj=None):
        return can_administer(request.user)

    def has_change_permission(self, request, obj=None):
        return can_administer(request.user)

    def has_delete_permission(self, request, obj=None):
        return can_administer(request.user)


class _NonAdminsRefused:
    """Mixin for other apps' ModelAdmins (auth groups, django-q2's tasks and schedules): refused to
    anyone but gpuq admins, and beyond that as their app decides."""

    def has_module_permission(self, request):
        return can_administer(request.user) and super().has_module_permission(request)

    def has_view_permission(self, request, obj=None):
        return can_administer(request.user) and super().has_view_permission(request, obj)

    def has_add_permission(self, request, *args):
        return can_administer(request.user) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None):
        return can_administer(request.user) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return can_administer(request.user) and super().has_delete_permission(request, obj)


# Every app registered before this one (auth, django-q2): admins only.
for _model, _model_admin in list(admin.site._registry.items()):
    admin.site.unregister(_model)
    admin.site.register(
        _model, type(type(_model_admin).__name__, (_NonAdminsRefused, type(_model_admin)), {})
    )


class ProfileInline(AdminsOnly, admin.StackedInline):
    model = Profile
    can_delete = False


class UserQuotaInline(AdminsOnly, admin.StackedInline):
    """The user's daily and weekly GPU-seconds (empty: unlimited)."""

    model = GpuQuota
    fk_name = "user"
    exclude = ["team"]
    can_delete = True


class TeamQuotaInline(UserQuotaInline):
    fk_name = "team"
    exclude = ["user"]


class GpuqUserAdmin(AdminsOnly, UserAdmin):
    inlines = [ProfileInline, UserQuotaInline]


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), GpuqUserAdmin)


@admin.register(Team)
class TeamAdmin(AdminsOnly, admin.ModelAdmin):
    search_fields = ["name"]
    inlines = [TeamQuotaInline]


@admin.register(LevelLimits)
class LevelLimitsAdmin(AdminsOnly, admin.ModelAdmin):
    """Each level's default and longest time limit (empty: none at this level)."""

    list_display = ["level", "default_time_limit_seconds", "max_time_limit_seconds"]
    list_editable = ["default_time_limit_seconds", "max_time_limit_seconds"]


@admin.register(ApiToken)
class ApiTokenAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["hint", "user", "name", "created_at", "expires_at", "last_used_at"]
    readonly_fields = ["hint", "created_at", "last_used_at"]
    search_fields = ["user__username", "name"]

    def has_add_permission(self, request):
        # Keys are shown once at creation; make them with `manage.py gpuq_token` so the key can be read.
        return False
