"""Admin for teams, user profiles and API tokens."""

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiToken, Profile, Team
from scheduling.models import GpuQuota


class ProfileInline(admin.StackedInline):
    model = Profile
    can_delete = False


class UserQuotaInline(admin.StackedInline):
    """The user's daily and weekly GPU-seconds (empty: unlimited)."""

    model = GpuQuota
    fk_name = "user"
    exclude = ["team"]
    can_delete = True


class TeamQuotaInline(UserQuotaInline):
    fk_name = "team"
    exclude = ["user"]


class GpuqUserAdmin(UserAdmin):
    inlines = [ProfileInline, UserQuotaInline]


admin.site.unregister(get_user_model())
admin.site.register(get_user_model(), GpuqUserAdmin)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    search_fields = ["name"]
    inlines = [TeamQuotaInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = ["hint", "user", "name", "created_at", "expires_at", "last_used_at"]
    readonly_fields = ["hint", "created_at", "last_used_at"]
    search_fields = ["user__username", "name"]

    def has_add_permission(self, request):
        # Keys are shown once at creation; make them with `manage.py gpuq_token` so the key can be read.
        return False
