"""Admin for nodes, GPUs and allocations (gpuq admins only)."""

from django.contrib import admin

from accounts.admin import AdminsOnly
from gpus.models import Allocation, Gpu, Node
from gpus.services import node_set_drained


class GpuInline(AdminsOnly, admin.TabularInline):
    model = Gpu
    extra = 0
    fields = [
        "index",
        "model_name",
        "memory_mb",
        "uuid",
        "simulated",
        "healthy",
        "unhealthy_reason",
        "memory_used_mb",
        "utilization_percent",
        "temperature_c",
        "foreign_pids",
        "readings_at",
    ]
    readonly_fields = [f for f in fields if f != "healthy"]  # readings come from the inventory


@admin.register(Node)
class NodeAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["name", "status", "drained", "backend", "simulated", "heartbeat_at", "registered_at"]
    list_filter = ["status", "drained", "backend"]
    actions = ["drain", "undrain"]
    search_fields = ["name"]
    readonly_fields = ["backend", "boot_id", "heartbeat_at", "registered_at"]
    inlines = [GpuInline]

    @admin.display(boolean=True, description="simulated GPUs")
    def simulated(self, node: Node) -> bool:
        return node.backend == "declared"

    @admin.action(description="Drain: no new jobs; running ones finish")
    def drain(self, request, queryset):
        for node in queryset:
            node_set_drained(node=node, user=request.user, drained=True)

    @admin.action(description="Undrain: take jobs again")
    def undrain(self, request, queryset):
        for node in queryset:
            node_set_drained(node=node, user=request.user, drained=False)


@admin.register(Gpu)
class GpuAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = [
        "__str__",
        "node",
        "index",
        "model_name",
        "memory_mb",
        "memory_used_mb",
        "utilization_percent",
        "temperature_c",
        "busy",
        "simulated",
        "healthy",
        "unhealthy_reason",
        "readings_at",
    ]
    list_filter = ["node", "simulated", "healthy"]
    list_select_related = ["node"]
    search_fields = ["uuid", "model_name", "node__name"]
    readonly_fields = [
        "unhealthy_reason",
        "memory_used_mb",
        "utilization_percent",
        "temperature_c",
        "foreign_pids",
        "readings_at",
    ]

    @admin.display(boolean=True, description="busy (foreign process)")
    def busy(self, gpu: Gpu) -> bool:
        return gpu.busy_foreign


@admin.register(Allocation)
class AllocationAdmin(AdminsOnly, admin.ModelAdmin):
    list_display = ["gpu", "job", "attempt", "allocated_at", "released_at"]
    list_filter = ["gpu__node"]
    list_select_related = ["gpu__node", "job"]
    readonly_fields = ["gpu", "job", "attempt", "allocated_at", "released_at"]

    def has_add_permission(self, request):
        return False
