"""REST API views: each parses, authorizes, calls one service or selector, and renders."""

import dataclasses

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.throttling import SubmitThrottle
from scheduling import idempotency, listing, logs, selectors, services
from scheduling.api.paging import CappedLimitOffset
from scheduling.api.serializers import (
    JobDetailOut,
    JobOut,
    JobSubmitIn,
    LogOut,
    TemplateOut,
)
from scheduling.models import JobTemplate
from scheduling.states import TERMINAL, Status


class JobListCreate(APIView):
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, SubmitThrottle]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, many=True, description="filter; repeat or comma-separate"),
            OpenApiParameter("owner", str, description="username (admins see everyone's jobs)"),
            OpenApiParameter("team", str, description="team name"),
            OpenApiParameter("reason", str, description="wait reason, e.g. resources"),
            OpenApiParameter("template", str, description="template name"),
            OpenApiParameter("q", str, description="search: a job id, or text in its name or owner"),
            OpenApiParameter("sort", str, description="newest (default), oldest, priority, gpus, owner"),
            OpenApiParameter("limit", int, description="page size (default 50, at most 500)"),
        ],
        responses=JobOut(many=True),
    )
    def get(self, request):
        try:
            filters = listing.Filters.parse(request.query_params)
        except listing.BadFilter as error:
            return Response({error.field: [error.message]}, status=status.HTTP_400_BAD_REQUEST)
        jobs = filters.apply(selectors.visible_jobs(request.user).prefetch_related("depends_on"))
        jobs = filters.ordered(jobs, ("-id",))
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=JobSubmitIn,
        parameters=[
            OpenApiParameter(
                idempotency.HEADER,
                str,
                OpenApiParameter.HEADER,
                description="retry-safe submit: a retry with the same key and body returns the first job "
                "(200, header Idempotent-Replayed: true); the same key with another body is a 422",
            )
        ],
        responses={201: JobDetailOut, 200: JobDetailOut},
    )
    def post(self, request):
        data = JobSubmitIn(data=request.data)
        data.is_valid(raise_exception=True)
        key = request.headers.get(idempotency.HEADER)
        if key is None or data.validated_data.get("dry_run"):
            job, created = services.job_submit(user=request.user, **data.validated_data), True
        else:
            job, created = idempotency.submit_once(
                user=request.user,
                key=idempotency.check_key(key),
                body_hash=idempotency.request_hash(request.data),
                submit=lambda: services.job_submit(user=request.user, **data.validated_data),
            )
        if isinstance(job, services.DryRun):
            return Response({**dataclasses.asdict(job), "dry_run": True})
        job.refresh_from_db()
        body = JobDetailOut(job, context={"request": request}).data
        if not created:
            return Response(body, headers={"Idempotent-Replayed": "true"})
        return Response(body, status=status.HTTP_201_CREATED)


class JobDetail(APIView):
    @extend_schema(responses=JobDetailOut)
    def get(self, request, job_id: int):
        job = get_object_or_404(
            selectors.visible_jobs(request.user).prefetch_related("transitions__triggered_by"), pk=job_id
        )
        return Response(JobDetailOut(job, context={"request": request}).data)


class JobCancel(APIView):
    @extend_schema(request=None, responses={200: JobOut, 202: JobOut})
    def post(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        job = services.job_cancel(job=job, user=request.user, reason=request.data.get("reason", "") or "")
        # 202: a running job has been asked to stop and will end `cancelled` once its processes are gone.
        code = status.HTTP_202_ACCEPTED if job.status == Status.RUNNING else status.HTTP_200_OK
        return Response(JobOut(job, context={"request": request}).data, status=code)


class JobLog(APIView):
    @extend_schema(
        parameters=[
            OpenApiParameter("lines", int, description="how many (default 100, max 10000)"),
            OpenApiParameter(
                "offset",
                int,
                description="follow: the text from this byte on (up to 1 MiB) and `next_offset` to ask "
                "for next; repeat until `finished` is true and `next_offset` equals `size`. `offset` in "
                "the answer is where the text starts: later than asked when those bytes are no longer kept",
            ),
        ],
        responses=LogOut,
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        if "offset" in request.query_params:
            raw = request.query_params["offset"]
            if not raw.isdigit():
                return Response({"offset": ["a byte offset: 0 or more"]}, status=status.HTTP_400_BAD_REQUEST)
            finished = job.status in TERMINAL
            text, start, next_offset, size = logs.read_from(job.pk, int(raw), final=finished)
            return Response(
                {
                    "job": job.pk,
                    "offset": start,
                    "text": text,
                    "next_offset": next_offset,
                    "size": size,
                    "finished": finished,
                }
            )
        raw = request.query_params.get("lines", "100")
        if not raw.isdigit() or not 1 <= int(raw) <= 10000:
            return Response({"lines": ["a whole number from 1 to 10000"]}, status=status.HTTP_400_BAD_REQUEST)
        lines, truncated = logs.tail(job.pk, int(raw))
        return Response({"job": job.pk, "lines": lines, "truncated": truncated})


class TemplateList(APIView):
    @extend_schema(responses=TemplateOut(many=True))
    def get(self, request):
        return Response(
            TemplateOut(JobTemplate.objects.filter(enabled=True).order_by("name"), many=True).data
        )
