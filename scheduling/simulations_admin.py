"""The admin's what-if simulations (gpuq admins only): start one from history or a trace, and read its
comparison table (scheduling.simulations)."""

import json

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.admin import AdminsOnly
from accounts.permissions import can_administer
from scheduling import simulations
from scheduling.models import Simulation


class SimulationForm(forms.Form):
    days = forms.IntegerField(required=False, min_value=1, help_text="replay the jobs of the last N days")
    trace_file = forms.FileField(required=False, help_text="or a trace CSV (see the README)")
    trace_csv = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 4}), label="or paste it")
    policies = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 6}),
        initial='{"backfill + shortest limit": {"backfill": {}, "ordering": {"within_priority": "shortest_limit"}}}',
        help_text="proposed policy sets as JSON; compared with strict FIFO, backfill and the present policies",
    )
    nodes = forms.CharField(
        required=False, help_text="GPUs per node, e.g. 8,8,8 (default: the registered nodes)"
    )

    def service_arguments(self) -> dict:
        d = self.cleaned_data
        try:
            policies = json.loads(d["policies"] or "{}")
        except json.JSONDecodeError as error:
            raise ValidationError({"policies": f"not JSON: {error}"}) from None
        try:
            nodes = [int(n) for n in d["nodes"].split(",")] if d["nodes"].strip() else None
        except ValueError:
            raise ValidationError({"nodes": "GPU counts separated by commas, e.g. 8,8"}) from None
        trace, name = d["trace_csv"] or None, "pasted trace"
        if d["trace_file"] is not None:
            trace, name = d["trace_file"].read().decode("utf-8", "replace"), d["trace_file"].name
        return {
            "days": d["days"],
            "trace": trace,
            "trace_name": name,
            "policy_sets": policies,
            "nodes": nodes,
        }


@admin.register(Simulation)
class SimulationAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["id", "source", "status", "progress", "created_by", "created_at", "finished_at"]
    list_select_related = ["created_by"]
    fields = [
        "source",
        "status",
        "progress",
        "created_by",
        "created_at",
        "finished_at",
        "error",
        "comparison",
    ]
    readonly_fields = fields

    def get_queryset(self, request):
        return super().get_queryset(request).defer("trace")

    def has_change_permission(self, request, obj=None):
        return False  # a run is a record: read it, or start another

    @admin.display(description="comparison (waits in minutes; per GPU class: mean/p95/max)")
    def comparison(self, obj):
        if not obj.result:
            return "-"
        rows = obj.result["table"]
        head = format_html_join("", "<th>{}</th>", ((c,) for c in simulations.TABLE_COLUMNS))
        body = format_html_join(
            "",
            "<tr>{}</tr>",
            (
                (format_html_join("", "<td>{}</td>", ((row[c],) for c in simulations.TABLE_COLUMNS)),)
                for row in rows
            ),
        )
        return format_html("<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table>", head, body)

    def add_view(self, request, form_url="", extra_context=None):
        if not can_administer(request.user):
            raise PermissionDenied
        form = SimulationForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                sim = simulations.simulation_create(user=request.user, **form.service_arguments())
            except ValidationError as error:
                for field, problems in error.message_dict.items():
                    form.add_error("trace_csv" if field == "trace" else field, problems)
            else:
                return redirect(reverse("admin:scheduling_simulation_change", args=[sim.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": "Run a what-if simulation",
            "form": form,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/scheduling/simulation/add.html", context)
