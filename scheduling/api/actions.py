"""API views for acting on one job beyond submit and cancel: pause, resume, approve, reject, priority."""

from django.contrib.auth import get_user_model
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from scheduling import selectors, services
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
        data = self.input(data=request.data)
        data.is_valid(raise_exception=True)
        job = type(self).service(job=_job_for(request, job_id), user=request.user, **data.validated_data)
        accepted = job.status == Status.RUNNING  # asked to stop; the executor finishes it
        return Response(
            JobOut(job, context={"request": request}).data,
            status=status.HTTP_202_ACCEPTED if accepted else status.HTTP_200_OK,
        )


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


class JobPriority(_JobAction):
    service = services.job_set_priority
    input = PriorityIn

    @extend_schema(request=PriorityIn, responses=JobOut)
    def post(self, request, job_id: int):
        return super().post(request, job_id)


class ShareIn(serializers.Serializer):
    user = serializers.CharField(max_length=150)
    permission = serializers.ChoiceField(choices=["view", "act"], default="act")
    revoke = serializers.BooleanField(default=False)


class JobShare(APIView):
    @extend_schema(request=ShareIn, responses={200: dict})
    def post(self, request, job_id: int):
        """Share the job with a user (`view`, or `act`: cancel, pause, resume, priority), or revoke it."""
        data = ShareIn(data=request.data)
        data.is_valid(raise_exception=True)
        job = _job_for(request, job_id)
        other = get_user_model().objects.filter(username=data.validated_data["user"]).first()
        if other is None:
            return Response({"user": ["no such user"]}, status=status.HTTP_400_BAD_REQUEST)
        held = services.job_share(
            job=job,
            user=request.user,
            with_user=other,
            permission=data.validated_data["permission"],
            revoke=data.validated_data["revoke"],
        )
        return Response({"job": job.pk, "user": other.username, "permissions": held})
