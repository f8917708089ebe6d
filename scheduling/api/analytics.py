"""API view of the analytics: the figures of the analytics page over a chosen range, as JSON."""

from dataclasses import asdict

from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduling import analytics


class HourOut(serializers.Serializer):
    hour = serializers.DateTimeField(help_text="the hour's start")
    queue_depth = serializers.IntegerField(help_text="jobs waiting at the end of the hour")
    gpu_utilization_percent = serializers.FloatField(help_text="allocated share of the GPUs' time")
    jobs_finished = serializers.IntegerField(help_text="jobs that ended in the hour, any outcome")


class WaitBucketOut(serializers.Serializer):
    label = serializers.CharField()
    jobs = serializers.IntegerField()


class WaitsOut(serializers.Serializer):
    jobs_started = serializers.IntegerField()
    avg_wait_seconds = serializers.FloatField(allow_null=True)
    buckets = WaitBucketOut(many=True)


class FailureRateOut(serializers.Serializer):
    completed = serializers.IntegerField()
    failed = serializers.IntegerField()
    percent = serializers.FloatField(help_text="failed of completed + failed; 0 without any")


class UserHoursOut(serializers.Serializer):
    user = serializers.CharField()
    gpu_hours = serializers.FloatField()


class TeamHoursOut(serializers.Serializer):
    team = serializers.CharField(help_text='"(no team)" for jobs without one')
    gpu_hours = serializers.FloatField()


class EstimateErrorOut(serializers.Serializer):
    jobs = serializers.IntegerField(help_text="jobs started in the range that had a first estimate")
    median_seconds = serializers.FloatField(help_text="median of actual start - first estimate")
    p90_seconds = serializers.FloatField(help_text="90th percentile (nearest rank) of the same")
    on_time_percent = serializers.FloatField(help_text="started within ±10 min of the first estimate")
    later_percent = serializers.FloatField(help_text="started more than 10 min after it")
    earlier_percent = serializers.FloatField(help_text="started more than 10 min before it")


class AnalyticsOut(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()
    gpus = serializers.IntegerField(help_text="healthy GPUs now (the utilization's denominator)")
    hours = HourOut(many=True)
    waits = WaitsOut(help_text="jobs that started in the range, by how long they waited")
    failure_rate = FailureRateOut(help_text="jobs that ended completed or failed in the range")
    gpu_hours_by_user = UserHoursOut(many=True)
    gpu_hours_by_team = TeamHoursOut(many=True)
    estimate_error = EstimateErrorOut(
        allow_null=True, help_text="first estimated start against actual start; null without any"
    )


def as_dict(f: analytics.Figures) -> dict:
    return {
        "since": f.since,
        "until": f.until,
        "gpus": f.gpus,
        "hours": [
            {"hour": h, "queue_depth": d, "gpu_utilization_percent": u, "jobs_finished": n}
            for h, d, u, n in zip(f.hours, f.queue_depth, f.gpu_utilization, f.finished, strict=True)
        ],
        "waits": {
            "jobs_started": sum(n for _, n in f.waits),
            "avg_wait_seconds": f.avg_wait_seconds,
            "buckets": [{"label": label, "jobs": n} for label, n in f.waits],
        },
        "failure_rate": {"completed": f.completed, "failed": f.failed, "percent": f.failure_rate},
        "gpu_hours_by_user": [{"user": u, "gpu_hours": h} for u, h in f.gpu_hours_by_user],
        "gpu_hours_by_team": [{"team": t, "gpu_hours": h} for t, h in f.gpu_hours_by_team],
        "estimate_error": asdict(f.estimate_error) if f.estimate_error else None,
    }


class Analytics(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter(
                "since", OpenApiTypes.DATETIME, description="ISO 8601 start (default: 24 hours before until)"
            ),
            OpenApiParameter(
                "until", OpenApiTypes.DATETIME, description="ISO 8601 end (default: now); UTC without a zone"
            ),
        ],
        responses=AnalyticsOut,
    )
    def get(self, request):
        """What the analytics page shows, over [since, until) (at most GPUQ_ANALYTICS_MAX_DAYS, 31 days):
        per hour the queue depth, GPU utilization and jobs finished; the wait before start; the failure
        rate; GPU-hours per user and per team; the error of the first start estimates. Every logged-in user may read it."""
        now = timezone.now()
        try:
            since, until = analytics.parse_range(request.query_params, now)
        except analytics.BadRange as error:
            return Response({error.field: [error.message]}, status=error.status_code)
        return Response(AnalyticsOut(as_dict(analytics.figures(since=since, until=until, now=now))).data)
