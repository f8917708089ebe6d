"""REST API views: each parses, authorizes, calls one service or selector, and renders."""

import dataclasses

from django.core.exceptions import ValidationError
from django.core.handlers.asgi import ASGIRequest
from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from accounts.throttling import SubmitThrottle
from queueproject.strict import BIG_INT_MAX, strict_body, whole_number
from scheduling import idempotency, listing, logs, logsearch, selectors, services, templates_admin
from scheduling.api import shapes, sweeps
from scheduling.api.paging import (
    FILTER_PARAMETERS,
    OFFSET_MAX,
    PAGE_PARAMETERS,
    CappedLimitOffset,
    paged,
    text,
    whole,
)
from scheduling.api.queue import IsAdminLevel
from scheduling.api.serializers import (
    AuditOut,
    BulkOut,
    JobDetailOut,
    JobOut,
    JobSubmitIn,
    LogOut,
    LogSearchOut,
    ReasonIn,
    SubmittedOut,
    SweepSubmitIn,
    TemplateAdminOut,
    TemplateIn,
    TemplateOut,
)
from scheduling.models import JobTemplate
from scheduling.states import TERMINAL, Status


class JobListCreate(APIView):
    throttle_classes = [*api_settings.DEFAULT_THROTTLE_CLASSES, SubmitThrottle]

    @extend_schema(
        parameters=[
            *FILTER_PARAMETERS,
            *PAGE_PARAMETERS,
            whole("sweep", "the jobs of this sweep", high=BIG_INT_MAX),
        ],
        responses=shapes.PAGINATED_JOBS,
        operation_id="jobs_list",
    )
    def get(self, request):
        try:
            filters = listing.Filters.parse(request.query_params)
        except listing.BadFilter as error:
            return Response({error.field: [error.message]}, status=status.HTTP_400_BAD_REQUEST)
        jobs = filters.apply(selectors.visible_jobs(request.user).prefetch_related("depends_on"))
        sweep = request.query_params.get("sweep")
        if sweep is not None:
            if not (whole_number(sweep) and int(sweep) <= BIG_INT_MAX):
                return Response({"sweep": ["a sweep id"]}, status=status.HTTP_400_BAD_REQUEST)
            jobs = jobs.filter(sweep_id=int(sweep))
        jobs = filters.ordered(jobs, ("-id",))
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(jobs, request, view=self)
        return paginator.get_paginated_response(JobOut(page, many=True, context={"request": request}).data)

    @extend_schema(
        request=PolymorphicProxySerializer(
            component_name="JobSubmitOneOrMany",
            serializers=[JobSubmitIn, JobSubmitIn(many=True), SweepSubmitIn],
            resource_type_field_name=None,
            many=False,
        ),
        parameters=[
            OpenApiParameter(
                idempotency.HEADER,
                str,
                OpenApiParameter.HEADER,
                description="retry-safe submit: a retry with the same key and body returns the first job "
                "(or sweep) (200, header Idempotent-Replayed: true); the same key with another body is a 422",
            )
        ],
        responses={
            201: PolymorphicProxySerializer("JobSubmitted", [SubmittedOut, BulkOut], None, many=False),
            200: PolymorphicProxySerializer(
                "SubmitAnswer", [SubmittedOut, shapes.DryRunOut, BulkOut], None, many=False
            ),
        },
        description="One job; or many, all or none, under one sweep: a list of job bodies, or one body "
        "with a template and a `sweep` (`grid` and/or `sets`). Bulk errors: 400 "
        '`{"errors": {"INDEX": {"FIELD": ["…"]}}}`.',
    )
    def post(self, request):
        if sweeps.is_bulk(request.data):
            return sweeps.submit_bulk(request)
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
        if not created:  # a replay: the job as it is now (a new one renders what its submit wrote)
            job.refresh_from_db()
        job.queue_position = listing.position_of(job)
        body = SubmittedOut(job, context={"request": request}).data
        if not created:
            return Response(body, headers={"Idempotent-Replayed": "true"})
        return Response(body, status=status.HTTP_201_CREATED)


class JobDetail(APIView):
    @extend_schema(responses=JobDetailOut)
    def get(self, request, job_id: int):
        job = get_object_or_404(
            selectors.visible_jobs(request.user).prefetch_related(
                "transitions__triggered_by", "attempts__node", "attempts__parts__node"
            ),
            pk=job_id,
        )
        return Response(JobDetailOut(job, context={"request": request}).data)


class JobAuditList(APIView):
    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses=paged("AuditPage", AuditOut),
        operation_id="jobs_audit_list",
    )
    def get(self, request, job_id: int):
        """The job's audit, oldest first: priority changes, reorders and shares, with who and why (its
        status changes are its `transitions`)."""
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(job.audit.select_related("by").order_by("id"), request, view=self)
        return paginator.get_paginated_response(AuditOut(page, many=True).data)


class JobCancel(APIView):
    @extend_schema(request=ReasonIn, responses={200: JobOut, 202: JobOut})
    def post(self, request, job_id: int):
        reason = strict_body(ReasonIn, request)["reason"]
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        job = services.job_cancel(job=job, user=request.user, reason=reason)
        # 202: a running job has been asked to stop and will end `cancelled` once its processes are gone.
        code = status.HTTP_202_ACCEPTED if job.status == Status.RUNNING else status.HTTP_200_OK
        return Response(JobOut(job, context={"request": request}).data, status=code)


def _whole(
    params, name: str, default: int | None = None, *, low: int = 0, high: int | None = None
) -> int | None:
    """A whole-number query parameter within [low, high], or a 400 naming it."""
    raw = params.get(name)
    if raw is None:
        return default
    high = OFFSET_MAX if high is None else high
    if not whole_number(raw) or int(raw) < low or int(raw) > high:
        span = f"from {low} to {high}"
        raise ValidationError({name: [f"a whole number {span}"]})
    return int(raw)


class JobLog(APIView):
    @extend_schema(
        parameters=[
            whole("lines", "the last lines (default 100, max 10000; at most 1 MiB)", low=1, high=10000),
            whole(
                "offset",
                description="follow: the text from this byte on (up to 1 MiB) and `next_offset` to ask "
                "for next; repeat until `finished` is true and `next_offset` equals `size`. `offset` in "
                "the answer is where the text starts: later than asked when those bytes are no longer kept",
            ),
            whole("after", "the same as `offset`"),
            whole(
                "before",
                description="a window: the text just before this byte (with `bytes`; without `before`, the "
                "log's end). It starts at a line's start when it holds one; `offset` says where, `kept_from` "
                "where the stored log starts (earlier text exists while `offset` > `kept_from`)",
            ),
            whole("bytes", "a window's size (default 65536, max 1048576)", low=1, high=logs.WINDOW_MAX_BYTES),
        ],
        responses=LogOut,
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        params = request.query_params
        finished = job.status in TERMINAL
        after = _whole(params, "after", _whole(params, "offset"))
        if after is not None:
            text, start, next_offset, size = logs.read_from(job.pk, after, final=finished)
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
        if "before" in params or "bytes" in params:
            before = _whole(params, "before")
            limit = _whole(params, "bytes", logs.WINDOW_BYTES, low=1, high=logs.WINDOW_MAX_BYTES)
            window = logs.window(job.pk, before, limit)
            return Response({"job": job.pk, **dataclasses.asdict(window), "finished": finished})
        lines, truncated = logs.tail(job.pk, _whole(params, "lines", 100, low=1, high=10000))
        return Response({"job": job.pk, "lines": lines, "truncated": truncated})


class JobLogSearch(APIView):
    @extend_schema(
        parameters=[
            text(
                "q",
                "literal text (ASCII letters in any case)",
                min_length=1,
                max_length=logsearch.MAX_QUERY,
                required=True,
            ),
            whole("from", "the byte to search from (default 0; `next` of a page)"),
            whole("limit", "matches per page (default 50, max 200)", low=1, high=200),
        ],
        responses=LogSearchOut,
    )
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        query = request.query_params.get("q", "")
        if not 1 <= len(query) <= logsearch.MAX_QUERY:
            raise ValidationError({"q": [f"the text to find: 1 to {logsearch.MAX_QUERY} characters"]})
        page = logsearch.search(
            job.pk,
            query,
            start=_whole(request.query_params, "from", 0),
            limit=_whole(request.query_params, "limit", 50, low=1, high=200),
        )
        return Response({"job": job.pk, "q": query, **dataclasses.asdict(page)})


class JobLogDownload(APIView):
    @extend_schema(responses={(200, "text/plain"): bytes})
    def get(self, request, job_id: int):
        job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
        # An ASGI server would read a synchronous stream whole into memory before sending it.
        asgi = isinstance(request._request, ASGIRequest)
        response = StreamingHttpResponse(
            logs.astream(job.pk) if asgi else logs.stream(job.pk), content_type="text/plain; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="job-{job.pk}.log"'
        response["X-Log-Offset"] = str(logs.kept_from(job.pk))  # the first byte kept (0: the whole log)
        return response


class TemplateList(APIView):
    def get_permissions(self):
        # Everyone lists the enabled templates; only admins create one.
        return [IsAdminLevel()] if self.request.method == "POST" else super().get_permissions()

    @extend_schema(
        parameters=PAGE_PARAMETERS,
        responses=paged("PaginatedTemplateList", TemplateOut),
        operation_id="templates_list",
    )
    def get(self, request):
        """The enabled templates, by name, a page at a time."""
        paginator = CappedLimitOffset()
        page = paginator.paginate_queryset(
            JobTemplate.objects.filter(enabled=True).order_by("name"), request, view=self
        )
        return paginator.get_paginated_response(TemplateOut(page, many=True).data)

    @extend_schema(request=TemplateIn, responses={201: TemplateAdminOut})
    def post(self, request):
        """Admins: define a template (checked as in the Django admin; a bare program is resolved to its
        absolute path on the server)."""
        template = templates_admin.template_create(by=request.user, **strict_body(TemplateIn, request))
        return Response(TemplateAdminOut(template).data, status=status.HTTP_201_CREATED)


class TemplateDetail(APIView):
    permission_classes = [IsAdminLevel]

    @extend_schema(responses=TemplateAdminOut)
    def get(self, request, name: str):
        """Admins: a template, enabled or not, with its admin-only fields."""
        return Response(TemplateAdminOut(get_object_or_404(JobTemplate, name=name)).data)

    @extend_schema(request=TemplateIn, responses=TemplateAdminOut)
    def patch(self, request, name: str):
        """Admins: change the fields given (the template is checked as a whole). Submitted jobs keep
        their argv."""
        data = TemplateIn(data=request.data, partial=True)
        data.is_valid(raise_exception=True)
        template = templates_admin.template_update(
            by=request.user, template=get_object_or_404(JobTemplate, name=name), **data.validated_data
        )
        return Response(TemplateAdminOut(template).data)

    @extend_schema(request=None, responses={204: None})
    def delete(self, request, name: str):
        """Admins: delete a template no job or sweep uses; 409 otherwise (PATCH `enabled: false`)."""
        templates_admin.template_delete(by=request.user, template=get_object_or_404(JobTemplate, name=name))
        return Response(status=status.HTTP_204_NO_CONTENT)
