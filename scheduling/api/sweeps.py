"""API of bulk submission and sweeps: POST /api/v1/jobs with a list of jobs or a template `sweep`, and a
sweep's status and cancel. Each parses, authorizes, calls one service and renders."""

from collections import Counter

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from queueproject.refusals import status_of
from scheduling import idempotency, selectors, sweeps
from scheduling.api.serializers import JobSubmitIn, ReasonIn, SweepCancelledOut, SweepOut, SweepSpecIn
from scheduling.models import Job, JobTemplate, Sweep


def is_bulk(body) -> bool:
    """A list of jobs, or one job spec with a `sweep`."""
    return isinstance(body, list) or (isinstance(body, dict) and "sweep" in body)


def submit_bulk(request) -> Response:
    """POST /api/v1/jobs for many jobs: all are made under one new sweep, or none (400 naming each
    invalid job by index, or the field of the sweep)."""
    body = request.data
    if isinstance(body, list):
        sweeps.check_size(len(body))
        specs, template, name = _checked_list(body), None, ""
    else:
        specs, template, name = _expanded_sweep(body)

    made: list[Job] = []

    def submit() -> Sweep:
        sweep, jobs = sweeps.sweep_submit(user=request.user, specs=specs, name=name, template=template)
        made.extend(jobs)
        return sweep

    key = request.headers.get(idempotency.HEADER)
    if key is None:
        sweep, created = submit(), True
    else:
        sweep, created = idempotency.submit_once(
            user=request.user,
            key=idempotency.check_key(key),
            body_hash=idempotency.request_hash(body),
            submit=submit,
        )
    jobs = (
        made if created else list(Job.objects.filter(sweep=sweep).order_by("array_index").only(*_JOB_FIELDS))
    )
    counts = dict(sorted(Counter(str(job.status) for job in jobs).items()))
    answer = {
        "sweep": SweepOut(sweep, context={"counts": counts}).data,
        "jobs": [{name: getattr(job, name) for name in _JOB_FIELDS} for job in jobs],
    }
    if not created:
        return Response(answer, headers={"Idempotent-Replayed": "true"})
    return Response(answer, status=status.HTTP_201_CREATED)


_JOB_FIELDS = ("id", "name", "array_index", "status", "wait_reason")


def _checked_list(body: list) -> list[dict]:
    """Each item through the single-job serializer (one of it for all: no per-item copies), its
    templates read once."""
    names = {item.get("template") for item in body if isinstance(item, dict)}
    templates = {
        t.name: t for t in JobTemplate.objects.filter(name__in=[n for n in names if isinstance(n, str)])
    }
    data = JobSubmitIn(data=body, many=True, context={"templates": templates})
    if not data.is_valid():
        errors = data.errors  # a list of each item's errors, or (DRF 3.15) a dict of the invalid ones
        found = errors.items() if isinstance(errors, dict) else enumerate(errors)
        raise sweeps.BulkRejected({int(i): errors for i, errors in found if errors}, status_of(errors))
    return list(data.validated_data)


def _expanded_sweep(body: dict) -> tuple[list[dict], JobTemplate, str]:
    """A template sweep: the job fields apply to every job; each parameter set is merged over `params`."""
    body = dict(body)
    spec = SweepSpecIn(data=body.pop("sweep"))
    if not spec.is_valid():
        raise serializers.ValidationError({"sweep": spec.errors})
    data = JobSubmitIn(data=body)
    data.is_valid(raise_exception=True)
    base = dict(data.validated_data)
    if "template" not in base:
        raise serializers.ValidationError(
            {"template": ["a sweep runs a template: name one (argv is not swept)"]}
        )
    sets = sweeps.parameter_sets(grid=spec.validated_data.get("grid"), sets=spec.validated_data.get("sets"))
    params = base.pop("params", {})
    specs = [{**base, "params": {**params, **values}} for values in sets]
    return specs, base["template"], base.get("name", "")


class SweepDetail(APIView):
    @extend_schema(responses=SweepOut)
    def get(self, request, sweep_id: int):
        """A sweep and how many of its jobs are in each status (its jobs: GET /api/v1/jobs?sweep=ID)."""
        sweep = get_object_or_404(selectors.visible_sweeps(request.user), pk=sweep_id)
        return Response(SweepOut(sweep, context={"counts": sweeps.counts(sweep)}).data)


class SweepCancel(APIView):
    @extend_schema(request=ReasonIn, responses=SweepCancelledOut)
    def post(self, request, sweep_id: int):
        """Cancel every unfinished job of the sweep; running ones are asked to stop (they end
        `cancelled` once stopped). `cancelled` in the answer: how many were cancelled or asked."""
        data = ReasonIn(data=request.data)
        data.is_valid(raise_exception=True)
        sweep = get_object_or_404(selectors.visible_sweeps(request.user), pk=sweep_id)
        done = sweeps.sweep_cancel(sweep=sweep, user=request.user, **data.validated_data)
        return Response({**SweepOut(sweep, context={"counts": sweeps.counts(sweep)}).data, "cancelled": done})
