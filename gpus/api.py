"""API views for nodes and GPUs: the nodes list, drain and undrain, and the system status."""

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from gpus.models import Allocation, Gpu, Node
from gpus.services import node_set_drained
from scheduling.api import shapes


def node_view(node: Node, holders: dict[int, dict] | None = None) -> dict:
    gpus = []
    for gpu in node.gpus.all():
        row = {
            "index": gpu.index,
            "uuid": gpu.uuid,
            "name": gpu.model_name,
            "memory_mb": gpu.memory_mb,
            "memory_gb": round(gpu.memory_mb / 1024, 1),
            "simulated": gpu.simulated,
            "healthy": gpu.healthy,
            "unhealthy_reason": "" if gpu.healthy else gpu.unhealthy_reason,
            # Busy: a process that is not a gpuq job uses it (pids in foreign_pids); not given out.
            "busy": gpu.busy_foreign,
            "foreign_pids": list(gpu.foreign_pids),
            "memory_used_mb": gpu.memory_used_mb,
            "utilization_percent": gpu.utilization_percent,
            "temperature_c": gpu.temperature_c,
            "readings_at": gpu.readings_at.isoformat() if gpu.readings_at else None,
        }
        if holders is not None:
            holder = holders.get(gpu.pk)
            row.update(
                allocated=holder is not None,
                job_id=holder["job"] if holder else None,
                owner=holder["owner"] if holder else None,
            )
        gpus.append(row)
    return {
        "name": node.name,
        "status": node.status,
        "drained": node.drained,
        "backend": node.backend,
        "simulated": node.backend == "declared",
        "labels": node.labels,
        "heartbeat_at": node.heartbeat_at.isoformat() if node.heartbeat_at else None,
        "gpus": gpus,
    }


def _nodes():
    return Node.objects.order_by("name").prefetch_related(
        Prefetch("gpus", queryset=Gpu.objects.order_by("index"))
    )


class NodeList(APIView):
    @extend_schema(responses=shapes.NodesOut)
    def get(self, request):
        return Response({"nodes": [node_view(node) for node in _nodes()]})


class NodeDrain(APIView):
    drained = True

    @extend_schema(request=None, responses=shapes.NodeOut)
    def post(self, request, name: str):
        node = node_set_drained(
            node=get_object_or_404(Node, name=name), user=request.user, drained=self.drained
        )
        return Response(node_view(_nodes().get(pk=node.pk)))


class NodeUndrain(NodeDrain):
    drained = False


class SystemStatus(APIView):
    """Nodes and GPUs, and with `include_allocation=true` which job holds each GPU (seed 001's shape)."""

    @extend_schema(
        parameters=[OpenApiParameter("include_allocation", bool)],
        responses=shapes.SystemStatusOut,
    )
    def get(self, request):
        raw = request.query_params.get("include_allocation", "false")
        if raw not in ("true", "false"):
            return Response({"include_allocation": ["true or false"]}, status=400)
        with_allocation = raw == "true"
        holders = None
        if with_allocation:
            holders = {
                row["gpu_id"]: {"job": row["job_id"], "owner": row["job__owner__username"]}
                for row in Allocation.objects.active().values("gpu_id", "job_id", "job__owner__username")
            }
        nodes = [node_view(node, holders) for node in _nodes()]
        body = {"nodes": nodes, "gpu_count": sum(len(n["gpus"]) for n in nodes)}
        if with_allocation:
            devices = [dict(gpu, node=n["name"]) for n in nodes for gpu in n["gpus"]]
            body["gpu_allocation"] = {
                "allocated_gpus": [f"{d['node']}:{d['index']}" for d in devices if d["allocated"]],
                "available_gpus": [
                    f"{d['node']}:{d['index']}"
                    for d, n in ((d, next(x for x in nodes if x["name"] == d["node"])) for d in devices)
                    if not d["allocated"]
                    and d["healthy"]
                    and not d["busy"]
                    and n["status"] == "online"
                    and not n["drained"]
                ],
                "running_jobs": len({d["job_id"] for d in devices if d["allocated"]}),
                "devices": devices,
            }
        return Response(body)
