"""API views for the queue as a whole: list, stats, me, position, reorder, pause, concurrency, process,
cleanup, quotas and policies."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view, inline_serializer
from rest_framework import serializers, status, viewsets
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import is_admin
from queueproject.strict import strict_body, whole_number
from scheduling import listing, policies, quotas, retention, selectors, services, ticker
from scheduling.api import shapes
from scheduling.api.paging import FILTER_PARAMETERS, OFFSET_MAX, PAGE_PARAMETERS, whole
from scheduling.api.serializers import (
    ConcurrencyIO,
    PolicySerializer,
    QueueJobOut,
    QueueOut,
    QuotaIn,
    ReasonIn,
    ReorderIn,
)
from scheduling.models import Job, PolicyType, SchedulingPolicy, WaitReason
from scheduling.states import HOLDS_GPUS, TERMINAL, Status


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
    if not whole_number(raw_limit) or int(raw_limit) > OFFSET_MAX:
        raise listing.BadFilter("limit", f"a whole number from 0 to {OFFSET_MAX} (more than {cap} is {cap})")
    if not whole_number(raw_offset) or int(raw_offset) > OFFSET_MAX:
        raise listing.BadFilter("offset", "a whole number, 0 or more")
    return int(raw_offset), min(int(raw_limit), cap)


class Queue(APIView):
    @extend_schema(
        parameters=[
            *FILTER_PARAMETERS,
            whole("limit", "at most this many pending and held entries (default and cap 500)"),
            whole("offset", "skip this many pending and held entries"),
            OpenApiParameter(
                "include_completed",
                bool,
                description="also `completed`: finished jobs, the last to finish first, windowed by "
                "`offset` and `limit` (default GPUQ_PAGE_SIZE, 50), counted in `completed_count`",
            ),
        ],
        responses=shapes.QueueListOut,
    )
    def get(self, request):
        try:
            filters = listing.Filters.parse(request.query_params)
            offset, limit = _window(request.query_params)
            include_completed = listing.flag(request.query_params, "include_completed")
        except listing.BadFilter as error:
            return Response({error.field: [error.message]}, status=400)
        the_plan = listing.plan()
        pending = listing.pending_ids(filters, the_plan) if listing.shows(filters, [Status.PENDING]) else []
        held = (
            listing.held_jobs(filters) if listing.shows(filters, listing.HELD + (Status.PENDING,)) else None
        )
        # The unfiltered queue's held jobs are read once per change for every reader of the same window.
        sections = {
            "running": listing.running(filters, the_plan) if listing.shows(filters, HOLDS_GPUS) else [],
            "pending": listing.pending_entries(pending[offset : offset + limit], the_plan),
            "held": (
                listing.held_entries(
                    held[offset : offset + limit], the_plan, filters, ("window", offset), limit
                )
                if held is not None
                else []
            ),
        }
        counts = {"pending_count": len(pending), "held_count": held.count() if held is not None else 0}
        completed, counts["completed_count"] = [], None
        if include_completed and listing.shows(filters, TERMINAL):
            done = listing.completed_jobs(filters)
            size = limit if "limit" in request.query_params else min(limit, settings.GPUQ_PAGE_SIZE)
            completed = listing.completed_entries(done[offset : offset + size])
            counts["completed_count"] = done.count()
        elif include_completed:
            counts["completed_count"] = 0
        body = {**sections, "completed": completed, **counts, "offset": offset, "limit": limit}
        return Response(QueueOut(body).data)


class QueueStats(APIView):
    @extend_schema(responses=shapes.QueueStatsOut)
    def get(self, request):
        return Response(selectors.queue_stats())


class QueueMe(APIView):
    @extend_schema(responses=shapes.QueueMeOut)
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
                "best_position": the_plan.positions.get(pending[0]) if pending else None,
                # The first GPUQ_MAX_PAGE_SIZE of each, in queue order; the counts are of all.
                "pending_jobs": QueueJobOut(listing.pending_entries(pending[:cap], the_plan), many=True).data,
                "running_jobs": QueueJobOut(running[:cap], many=True).data,
            }
        )


class QueuePosition(APIView):
    @extend_schema(responses=shapes.QueuePositionOut)
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        if job.status in HOLDS_GPUS:
            return Response(
                {
                    "id": job.pk,
                    "status": job.status,
                    "position": 0,
                    "wait_reason": WaitReason.NONE,
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
        if not entries or entries[0].job.status != Status.PENDING:  # it started between our two reads
            return Response({"id": job.pk, "status": Job.objects.get(pk=job.pk).status, "position": 0})
        return Response(_position(entries[0]))


def _position(entry) -> dict:
    """A waiting job's place, in the fields QueuePositionOut declares (the queue entry has more)."""
    data = QueueJobOut(entry).data
    return {name: data[name] for name in shapes.QueuePositionOut().fields if name in data}


class QueueReorder(APIView):
    """Admins: give a waiting job a new priority and/or move it before or after another job."""

    permission_classes = [IsAdminLevel]

    @extend_schema(request=ReorderIn, responses=shapes.QueuePositionOut)
    def post(self, request):
        d = strict_body(ReorderIn, request)
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
        ticker.run(force=True, wait=True)  # the admin waits for the tick that places the job
        entries = listing.pending_entries([job.pk], listing.plan())
        found = entries and entries[0].position is not None
        if found:
            return Response(_position(entries[0]))
        return Response({"id": job.pk, "status": Job.objects.get(pk=job.pk).status, "position": None})


class QueuePause(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(request=ReasonIn, responses={204: None})
    def post(self, request):
        services.queue_pause(user=request.user, reason=strict_body(ReasonIn, request)["reason"])
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
    """Admins: run one tick now, waiting for a tick running elsewhere (ticks also run after every change
    and periodically)."""

    permission_classes = [IsAdminLevel]

    @extend_schema(request=None, responses=shapes.ProcessedOut)
    def post(self, request):
        plan = ticker.run(force=True, wait=True)
        return Response(
            {
                "started": [s.job_id for s in plan.starts],
                "failed": [f.job_id for f in plan.fails],
                "preempted": [p.job_id for p in plan.preempts],
            }
        )


CLEANUP_DAYS = (1, 365)


class QueueCleanup(APIView):
    """Admins: archive and remove finished jobs older than `days` (seed 001), with everything that
    belongs to them; active jobs are never touched. Answers what was removed."""

    permission_classes = [IsAdminLevel]

    @extend_schema(
        parameters=[
            whole(
                "days",
                "remove jobs finished more than this many days ago",
                low=CLEANUP_DAYS[0],
                high=CLEANUP_DAYS[1],
            )
        ],
        request=None,
        responses=inline_serializer(
            "Cleanup",
            {
                "success": serializers.BooleanField(),
                "deleted": serializers.IntegerField(),
                "days": serializers.IntegerField(),
                "removed": serializers.DictField(),
            },
        ),
    )
    def post(self, request):
        low, high = CLEANUP_DAYS
        raw = request.query_params.get("days", "30")
        if not whole_number(raw) or not low <= int(raw) <= high:
            return Response({"days": [f"a whole number of days from {low} to {high}"]}, status=400)
        days, now = int(raw), timezone.now()
        removed = retention.jobs_cleanup(finished_before=now - timedelta(days=days), now=now)
        return Response(
            {"success": True, "deleted": removed.jobs, "days": days, "removed": removed.as_dict()}
        )


class QuotaStatus(APIView):
    @extend_schema(responses=shapes.QuotaStatusOut)
    def get(self, request):
        return Response(quotas.quota_status(request.user))


class QuotaAdmin(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(request=QuotaIn, responses=shapes.QuotaOut)
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


@extend_schema_view(list=extend_schema(parameters=PAGE_PARAMETERS))
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
