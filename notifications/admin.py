"""Admin (gpuq admins only): the delivery log (read-only; failed ones can be sent again) and webhooks
(team hooks are made here too; a new one's secret is shown once)."""

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.utils import timezone

from accounts.admin import AdminsOnly
from notifications import services
from notifications.models import Delivery, DeliveryStatus, Webhook


def _field_check(check, value, field: str):
    """A service's check as one form field's error (it names the field itself)."""
    try:
        return check(value)
    except ValidationError as error:
        raise forms.ValidationError(error.message_dict[field]) from None


@admin.register(Delivery)
class DeliveryAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = [
        "created_at",
        "kind",
        "channel",
        "target",
        "status",
        "attempts",
        "next_try_at",
        "last_error",
    ]
    list_filter = ["status", "channel", "kind"]
    search_fields = ["key", "target"]
    ordering = ["-created_at"]
    list_select_related = False
    actions = ["send_again"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Delivery._meta.fields]

    def has_add_permission(self, request, obj=None):
        return False

    @admin.action(description="Send the chosen failed deliveries again")
    def send_again(self, request, queryset):
        count = queryset.filter(status=DeliveryStatus.FAILED).update(
            status=DeliveryStatus.PENDING, attempts=0, next_try_at=timezone.now()
        )
        self.message_user(request, f"{count} delivery(ies) will be sent again.", messages.SUCCESS)


class WebhookForm(forms.ModelForm):
    url = forms.URLField(max_length=500, assume_scheme="https")

    class Meta:
        model = Webhook
        fields = ["team", "name", "url", "format", "kinds", "enabled"]

    def clean_url(self):
        return _field_check(services.check_url, self.cleaned_data["url"], "url")

    def clean_kinds(self):
        kinds = self.cleaned_data["kinds"] or []
        if not isinstance(kinds, list):
            raise forms.ValidationError('a list of kinds, e.g. ["failed", "node_offline"]')
        return _field_check(services.check_kinds, kinds, "kinds")

    def clean(self):
        data = super().clean()
        if self.instance.owner_id is None and not data.get("team"):
            self.add_error("team", "Admins make team webhooks here; users set their own on their page.")
        return data


@admin.register(Webhook)
class WebhookAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["__str__", "team", "owner", "format", "enabled", "created_at"]
    list_filter = ["format", "enabled"]
    fields = ["team", "owner", "name", "url", "format", "kinds", "enabled", "secret_hint"]
    readonly_fields = ["owner", "secret_hint"]
    form = WebhookForm

    def save_model(self, request, obj, form, change):
        super().save_model(request, obj, form, change)
        if not change:
            self.message_user(
                request, f"Signing secret (shown only this once): {obj.secret}", messages.WARNING
            )
