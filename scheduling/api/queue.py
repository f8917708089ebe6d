"""API views for the queue as a whole: list, stats, me, position, reorder, pause, concurrency, process,
quotas and policies."""

from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import is_admin
from scheduling import policies, quotas, selectors, services
from scheduling.api.serializers import (
    ConcurrencyIO,
    PolicySerializer,
    QueueJobOut,
    QueueOut,
    QuotaIn,
    ReasonIn,
    ReorderIn,
)
from scheduling.models import Job, PolicyType, SchedulingPolicy
from scheduling.states import HOLDS_GPUS, Status
from scheduling.tick import tick


class IsAdminLevel:
    """DRF permission: gpuq admins (level admin or superuser) only."""

    def has_permission(self, request, view):
        return bool(request.user and request.user.is_authenticated and is_admin(request.user))

    def has_object_permission(self, request, view, obj):
        return self.has_permission(request, view)


class Queue(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="only entries of these statuses (comma-separated)"),
            OpenApiParameter("owner", str, description="only this user's entries"),
            OpenApiParameter("limit", int, description="at most this many pending entries (default 500)"),
        ],
        responses=QueueOut,
    )
    def get(self, request):
        view = selectors.queue()
        sections = {"running": view.running, "pending": view.pending, "held": view.held}
        wanted = {s for s in request.query_params.get("status", "").split(",") if s}
        unknown = wanted - set(Status.values)
        if unknown:
            return Response({"status": [f"unknown status {', '.join(sorted(unknown))}"]}, status=400)
        owner = request.query_params.get("owner")
        raw_limit = request.query_params.get("limit", "500")
        if not raw_limit.isdigit():
            return Response({"limit": ["a whole number"]}, status=400)
        for name, entries in sections.items():
            if wanted:
                entries = [e for e in entries if e.job.status in wanted]
            if owner:
                entries = [e for e in entries if e.job.owner.username == owner]
            sections[name] = entries
        sections["pending"] = sections["pending"][: int(raw_limit)]
        return Response(QueueOut(sections).data)


class QueueStats(APIView):
    @extend_schema(responses=inline_serializer("QueueStats", {"queue_depth": serializers.IntegerField()}))
    def get(self, request):
        return Response(selectors.queue_stats())


class QueueMe(APIView):
    @extend_schema(
        responses=inline_serializer("QueueMe", {"best_position": serializers.IntegerField(allow_null=True)})
    )
    def get(self, request):
        view = selectors.queue()
        mine = [e for e in view.pending if e.job.owner_id == request.user.pk]
        running = [e for e in view.running if e.job.owner_id == request.user.pk]
        blocked = Job.objects.filter(owner=request.user, status=Status.BLOCKED).count()
        return Response(
            {
                "pending_count": len(mine),
                "running_count": len(running),
                "blocked_count": blocked,
                "best_position": mine[0].position if mine else None,
                "pending_jobs": QueueJobOut(mine, many=True).data,
                "running_jobs": QueueJobOut(running, many=True).data,
            }
        )


class QueuePosition(APIView):
    @extend_schema(responses=QueueJobOut)
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        if job.status in HOLDS_GPUS:
            return Response(
                {
                    "id": job.pk,
                    "status": job.status,
                    "position": 0,
                    "wait_reason": "",
                    "estimated_start": None,
                    "estimated_start_latest": None,
                }
            )
        if job.status != Status.PENDING:
            return Response(
                {
                    "id": job.pk,
                    "status": job.status,
                    "position": None,
                    "wait_reason": job.wait_reason,
                    "wait_detail": job.wait_detail,
                    "estimated_start": None,
                    "estimated_start_latest": None,
                }
            )
        entry = next((e for e in selectors.queue().pending if e.job.pk == job.pk), None)
        if entry is None:  # it started between our two reads
            return Response({"id": job.pk, "status": Job.objects.get(pk=job.pk).status, "position": 0})
        return Response(QueueJobOut(entry).data)


class QueueReorder(APIView):
    """Admins: give a waiting job a new priority and/or move it before or after another job."""

    permission_classes = [IsAdminLevel]

    @extend_schema(request=ReorderIn, responses=QueueJobOut)
    def post(self, request):
        data = ReorderIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        job = get_object_or_404(Job, pk=d["job"])
        if "priority" in d and d["priority"] != job.priority:
            job = services.job_set_priority(
                job=job, user=request.user, priority=d["priority"], reason=d["reason"]
            )
        if "before" in d or "after" in d:
            anchor = get_object_or_404(Job, pk=d.get("before") or d.get("after"))
            services.job_move(
                job=job,
                user=request.user,
                reason=d["reason"],
                before=anchor if "before" in d else None,
                after=anchor if "after" in d else None,
            )
        entry = next((e for e in selectors.queue().pending if e.job.pk == job.pk), None)
        return Response(QueueJobOut(entry).data if entry else {"id": job.pk, "position": None})


class QueuePause(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(request=ReasonIn, responses={204: None})
    def post(self, request):
        services.queue_pause(user=request.user, reason=request.data.get("reason", "") or "")
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueueResume(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(request=None, responses={204: None})
    def post(self, request):
        services.queue_resume(user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class QueueConcurrency(APIView):
    @extend_schema(responses=ConcurrencyIO)
    def get(self, request):
        config = policies.enabled_configs().get(PolicyType.CONCURRENCY, {})
        return Response({k: config.get(k) for k in ConcurrencyIO().fields})

    @extend_schema(request=ConcurrencyIO, responses=ConcurrencyIO)
    def post(self, request):
        if not is_admin(request.user):
            raise PermissionDenied("Only admins change concurrency limits.")
        data = ConcurrencyIO(data=request.data)
        data.is_valid(raise_exception=True)
        config = services.concurrency_set(user=request.user, **data.validated_data)
        return Response({k: config.get(k) for k in ConcurrencyIO().fields})


class QueueProcess(APIView):
    """Admins: run one tick now (ticks also run on every change and periodically)."""

    permission_classes = [IsAdminLevel]

    @extend_schema(
        request=None, responses=inline_serializer("Processed", {"started": serializers.ListField()})
    )
    def post(self, request):
        plan = tick()
        return Response(
            {
                "started": [s.job_id for s in plan.starts],
                "failed": [f.job_id for f in plan.fails],
                "preempted": [p.job_id for p in plan.preempts],
            }
        )


class QuotaStatus(APIView):
    @extend_schema(responses=inline_serializer("QuotaStatus", {"warning": serializers.BooleanField()}))
    def get(self, request):
        return Response(quotas.quota_status(request.user))


class QuotaAdmin(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(request=QuotaIn, responses=QuotaIn)
    def put(self, request):
        data = QuotaIn(data=request.data)
        data.is_valid(raise_exception=True)
        d = data.validated_data
        quota = quotas.quota_set(
            by=request.user,
            user=d.get("user"),
            team=d.get("team"),
            daily_gpu_seconds=d["daily_gpu_seconds"],
            weekly_gpu_seconds=d["weekly_gpu_seconds"],
        )
        body = {
            "user": d["user"].username if "user" in d else None,
            "team": d["team"].name if "team" in d else None,
            "daily_gpu_seconds": quota.daily_gpu_seconds if quota else None,
            "weekly_gpu_seconds": quota.weekly_gpu_seconds if quota else None,
        }
        return Response(body)


class PolicyViewSet(viewsets.ModelViewSet):
    """Scheduling policies: one per type, JSON config validated per type. Reading is open to users;
    changes are for admins."""

    serializer_class = PolicySerializer
    queryset = SchedulingPolicy.objects.order_by("type")

    def get_permissions(self):
        from rest_framework.permissions import SAFE_METHODS, IsAuthenticated

        return [IsAuthenticated()] if self.request.method in SAFE_METHODS else [IsAdminLevel()]

    def perform_create(self, serializer):
        serializer.save()
        services._after_queue_change()

    def perform_update(self, serializer):
        serializer.save()
        services._after_queue_change()
