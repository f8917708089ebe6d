"""What-if simulations (admins only): start one, list them, read one's progress and comparison table."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from queueproject.schema import schema_rule
from queueproject.strict import StrictSerializer, strict_body
from scheduling import simulations
from scheduling.api.paging import PAGE_PARAMETERS, CappedLimitOffset, paged
from scheduling.api.queue import IsAdminLevel
from scheduling.models import Simulation

TRACE_MAX_CHARS = 2_000_000  # a 20,000-job CSV is about 700 KB; the request body is capped at 2.5 MB


@schema_rule(oneOf=[{"required": ["days"]}, {"required": ["trace"]}])
class SimulationIn(StrictSerializer):
    days = serializers.IntegerField(
        required=False,
        min_value=1,
        max_value=settings.GPUQ_SIMULATION_MAX_DAYS,
        help_text="replay the jobs that ran in the last N days (history)",
    )
    trace = serializers.CharField(
        required=False,
        max_length=TRACE_MAX_CHARS,
        trim_whitespace=False,
        help_text="or replay this trace: CSV with submit_time, gpus, runtime, user[, time_limit, priority, team]",
    )
    trace_name = serializers.CharField(required=False, max_length=200, default="trace")
    policies = serializers.JSONField(
        required=False,
        help_text='proposed policy sets: {"name": {"backfill": {}, "ordering": {"within_priority": '
        '"shortest_limit"}}}, compared with strict FIFO, backfill and the present policies',
    )
    nodes = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=1024),
        required=False,
        max_length=simulations.MAX_NODES,
        help_text="GPUs per node of the cluster to replay on (default: the registered nodes)",
    )


class SimulationOut(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    policies = serializers.JSONField(source="policy_sets")

    class Meta:
        model = Simulation
        fields = [
            "id",
            "status",
            "progress",
            "source",
            "days",
            "created_by",
            "created_at",
            "finished_at",
            "policies",
            "error",
            "result",
        ]


class SimulationSummaryOut(SimulationOut):
    class Meta(SimulationOut.Meta):
        fields = [f for f in SimulationOut.Meta.fields if f not in ("result", "policies")]


class Simulations(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(
        operation_id="simulations_list",
        parameters=PAGE_PARAMETERS,
        responses=paged("SimulationPage", SimulationSummaryOut),
    )
    def get(self, request):
        """Simulations, newest first (without their tables: read one for that)."""
        paginator = CappedLimitOffset()
        rows = Simulation.objects.select_related("created_by").defer("trace", "result").order_by("-id")
        page = paginator.paginate_queryset(rows, request, view=self)
        return paginator.get_paginated_response(SimulationSummaryOut(page, many=True).data)

    @extend_schema(request=SimulationIn, responses={201: SimulationOut, 202: SimulationOut})
    def post(self, request):
        """Replay history (`days`) or a `trace` under strict FIFO, backfill, the present policies and each
        proposed set. 201 with the table when done at once; 202 when it runs as a task: poll its `id`."""
        d = strict_body(SimulationIn, request)
        sim = simulations.simulation_create(
            user=request.user,
            policy_sets=d.get("policies", {}),
            days=d.get("days"),
            trace=d.get("trace"),
            trace_name=d["trace_name"],
            nodes=d.get("nodes"),
        )
        done = sim.status in (Simulation.Status.DONE, Simulation.Status.FAILED)
        return Response(
            SimulationOut(sim).data, status=status.HTTP_201_CREATED if done else status.HTTP_202_ACCEPTED
        )


class SimulationDetail(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(responses=SimulationOut)
    def get(self, request, simulation_id: int):
        """One simulation: its status and progress (0 to 1), then its comparison table in `result`."""
        sim = get_object_or_404(
            Simulation.objects.select_related("created_by").defer("trace"), pk=simulation_id
        )
        return Response(SimulationOut(sim).data)
