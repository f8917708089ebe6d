"""API views for acting on one job beyond submit and cancel: pause, resume, approve, reject, priority."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from queueproject.refusals import Unprocessable
from queueproject.strict import StrictSerializer
from scheduling import selectors, services
from scheduling.api import shapes
from scheduling.api.serializers import JobOut, PriorityIn, ReasonIn, RejectIn
from scheduling.models import Job
from scheduling.states import Status


def _job_for(request, job_id: int) -> Job:
    """The job, if the user may see it; otherwise a 404 exactly like a job that does not exist. The
    service then decides whether the user may act on it (403)."""
    return get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)


class _JobAction(APIView):
    """POST with an optional reason; calls `service(job=…, user=…, reason=…)`."""

    service = None
    input = ReasonIn

    @extend_schema(request=ReasonIn, responses={200: JobOut, 202: JobOut})
    def post(self, request, job_id: int):
        data = self.input(data=self.body(request))
        data.is_valid(raise_exception=True)
        job = type(self).service(job=_job_for(request, job_id), user=request.user, **data.validated_data)
        accepted = job.status == Status.RUNNING  # asked to stop; the executor finishes it
        return Response(
            JobOut(job, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_200_OK,
        )

    def body(self, request):
        return request.data


class JobPause(_JobAction):
    service = services.job_pause


class JobResume(_JobAction):
    service = services.job_resume


class JobApprove(_JobAction):
    service = services.job_approve


class JobReject(_JobAction):
    service = services.job_reject
    input = RejectIn

    @extend_schema(request=RejectIn, responses=JobOut)
    def post(self, request, job_id: int):
        return super().post(request, job_id)


class QueueReject(JobReject):
    """Seed 001's `POST /queue/{id}/reject?reason=…`: the reason from the query string when the body
    gives none."""

    def body(self, request):
        body = request.data
        if "reason" in request.query_params and isinstance(body, dict) and "reason" not in body:
            return {**body, "reason": request.query_params["reason"]}
        return body

    @extend_schema(
        request=RejectIn,
        parameters=[OpenApiParameter("reason", str, description="why (or `reason` in the body)")],
        responses=JobOut,
    )
    def post(self, request, job_id: int):
        return super().post(request, job_id)


class JobPriority(_JobAction):
    service = services.job_set_priority
    input = PriorityIn

    @extend_schema(request=PriorityIn, responses=JobOut)
    def post(self, request, job_id: int):
        return super().post(request, job_id)


class ShareIn(StrictSerializer):
    user = serializers.CharField(max_length=150)
    permission = serializers.ChoiceField(choices=["view", "act"], default="act")
    revoke = serializers.BooleanField(default=False)


class JobShare(APIView):
    @extend_schema(request=ShareIn, responses=shapes.ShareOut)
    def post(self, request, job_id: int):
        """Share the job with a user (`view`, or `act`: cancel, pause, resume, priority), or revoke it."""
        data = ShareIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = _job_for(request, job_id)
        other = get_user_model().objects.filter(username=data.validated_data["user"]).first()
        if other is None:
            raise Unprocessable({"user": "no such user"})
        held = services.job_share(
            job=job,
            user=request.user,
            with_user=other,
            permission=data.validated_data["permission"],
            revoke=data.validated_data["revoke"],
        )
        return Response({"job": job.pk, "user": other.username, "permissions": held})
