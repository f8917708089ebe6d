"""API views for the queue as a whole: list, stats, me, position, reorder, pause, concurrency, process,
quotas and policies."""

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import is_admin
from scheduling import listing, policies, quotas, selectors, services
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


def _window(params) -> tuple[int, int]:
    """`offset` and `limit` of a queue list: limit 500 by default and at most GPUQ_MAX_PAGE_SIZE."""
    cap = settings.GPUQ_MAX_PAGE_SIZE
    raw_limit, raw_offset = params.get("limit", str(cap)), params.get("offset", "0")
    if not raw_limit.isdigit():
        raise listing.BadFilter("limit", f"a whole number from 0 to {cap}")
    if not raw_offset.isdigit():
        raise listing.BadFilter("offset", "a whole number, 0 or more")
    return int(raw_offset), min(int(raw_limit), cap)


class Queue(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, description="only entries of these statuses (comma-separated)"),
            OpenApiParameter("owner", str, description="only this user's entries"),
            OpenApiParameter("team", str, description="only this team's entries"),
            OpenApiParameter("reason", str, description="only entries waiting for this reason"),
            OpenApiParameter("template", str, description="only entries of this template"),
            OpenApiParameter("q", str, description="search: a job id, or text in its name or owner"),
            OpenApiParameter(
                "sort", str, description="position (default), newest, oldest, priority, gpus, owner"
            ),
            OpenApiParameter(
                "limit", int, description="at most this many pending and held entries (default and cap 500)"
            ),
            OpenApiParameter("offset", int, description="skip this many pending and held entries"),
        ],
        responses=QueueOut,
    )
    def get(self, request):
        try:
            filters = listing.Filters.parse(request.query_params)
            offset, limit = _window(request.query_params)
        except listing.BadFilter as error:
            return Response({error.field: [error.message]}, status=400)
        the_plan = listing.plan()
        pending = listing.pending_ids(filters, the_plan) if listing.shows(filters, [Status.PENDING]) else []
        held = (
            listing.held_jobs(filters) if listing.shows(filters, listing.HELD + (Status.PENDING,)) else None
        )
        sections = {
            "running": listing.running(filters) if listing.shows(filters, HOLDS_GPUS) else [],
            "pending": listing.pending_entries(pending[offset : offset + limit], the_plan),
            "held": listing.held_entries(held[offset : offset + limit]) if held is not None else [],
        }
        counts = {"pending_count": len(pending), "held_count": held.count() if held is not None else 0}
        return Response({**QueueOut(sections).data, **counts, "offset": offset, "limit": limit})


class QueueStats(APIView):
    @extend_schema(responses=inline_serializer("QueueStats", {"queue_depth": serializers.IntegerField()}))
    def get(self, request):
        return Response(selectors.queue_stats())


class QueueMe(APIView):
    @extend_schema(
        responses=inline_serializer("QueueMe", {"best_position": serializers.IntegerField(allow_null=True)})
    )
    def get(self, request):
        mine = listing.Filters(owner=request.user.get_username())
        the_plan = listing.plan()
        pending = listing.pending_ids(mine, the_plan)
        running = listing.running(mine)
        blocked = Job.objects.filter(owner=request.user, status=Status.BLOCKED).count()
        cap = settings.GPUQ_MAX_PAGE_SIZE
        return Response(
            {
                "pending_count": len(pending),
                "running_count": len(running),
                "blocked_count": blocked,
                "best_position": the_plan.positions[pending[0]] if pending else None,
                # The first GPUQ_MAX_PAGE_SIZE of each, in queue order; the counts are of all.
                "pending_jobs": QueueJobOut(listing.pending_entries(pending[:cap], the_plan), many=True).data,
                "running_jobs": QueueJobOut(running[:cap], many=True).data,
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
        entries = listing.pending_entries([job.pk], listing.plan())
        if not entries or entries[0].position is None:  # it started between our two reads
            return Response({"id": job.pk, "status": Job.objects.get(pk=job.pk).status, "position": 0})
        return Response(QueueJobOut(entries[0]).data)


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
        entries = listing.pending_entries([job.pk], listing.plan())
        found = entries and entries[0].position is not None
        return Response(QueueJobOut(entries[0]).data if found else {"id": job.pk, "position": None})


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
