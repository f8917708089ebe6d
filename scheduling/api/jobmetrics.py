"""API view of a job's charts: the time series of one attempt (its progress numbers, its GPUs' readings)."""

from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduling import selectors, timeseries
from scheduling.api.views import _whole

PARAMETERS = {"attempt", "series", "after"}
NAMES_MAX = 50  # series one request may name


class PointOut(serializers.Serializer):
    at = serializers.DateTimeField()
    value = serializers.FloatField()


class SeriesOut(serializers.Serializer):
    name = serializers.CharField(help_text="a progress number (`loss`, `eval.loss`) or `gpu<i>.<reading>`")
    unit = serializers.CharField(help_text='"%", "MiB", or "" for the job\'s own numbers')
    points = PointOut(many=True, help_text="in time order")


class MetricsOut(serializers.Serializer):
    job = serializers.IntegerField()
    attempt = serializers.IntegerField(help_text="the attempt whose series these are")
    attempts = serializers.IntegerField(help_text="the job's latest attempt number")
    after = serializers.IntegerField(help_text="the `after` asked (0: from the start)")
    last = serializers.IntegerField(help_text="ask again with after=last for the points that came since")
    max_points = serializers.IntegerField(
        help_text="the most points kept per series (GPUQ_JOB_METRICS_MAX_POINTS)"
    )
    series = SeriesOut(many=True)


def names_param(raw: str | None) -> list[str] | None:
    """`series=loss,gpu0.utilization_percent` as a list, or a 400 naming the field."""
    if raw is None:
        return None
    names = [name.strip() for name in raw.split(",") if name.strip()]
    max_length = timeseries.NAME_MAX
    if not names or len(names) > NAMES_MAX or any(len(name) > max_length for name in names):
        raise ValidationError(
            {"series": [f"1 to {NAMES_MAX} comma-separated series names of at most {max_length} characters"]}
        )
    return names


class JobMetrics(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("attempt", int, description="which attempt (default: the latest)"),
            OpenApiParameter("series", str, description="only these series (comma-separated names)"),
            OpenApiParameter(
                "after",
                int,
                description="only points stored after this one (the `last` of an earlier answer)",
            ),
        ],
        responses=MetricsOut,
    )
    def get(self, request, job_id: int):
        """A job's charts as data: the time series of one attempt, each bounded to `max_points` points
        (a longer series is thinned evenly over its time span). Anyone who may read the job may read them."""
        params = request.query_params
        unknown = sorted(set(params) - PARAMETERS)
        if unknown:
            raise ValidationError(
                {unknown[0]: [f"not a parameter here; use {', '.join(sorted(PARAMETERS))}"]}
            )
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        attempt = _whole(params, "attempt", job.attempt, low=1, high=max(job.attempt, 1))
        after = _whole(params, "after", 0)
        found, last = timeseries.read(
            job_id=job.pk, attempt=attempt, names=names_param(params.get("series")), after=after
        )
        return Response(
            {
                "job": job.pk,
                "attempt": attempt,
                "attempts": job.attempt,
                "after": after,
                "last": last,
                "max_points": settings.GPUQ_JOB_METRICS_MAX_POINTS,
                "series": [
                    {
                        "name": s.name,
                        "unit": s.unit,
                        "points": [{"at": at, "value": value} for at, value in s.points],
                    }
                    for s in found
                ],
            }
        )
