"""API view of the approvals inbox: the blocked jobs the caller may approve or reject (for `gpuq`)."""

from django.core.exceptions import PermissionDenied
from drf_spectacular.utils import extend_schema
from rest_framework.views import APIView

from accounts.permissions import is_lead_or_admin
from scheduling import approvals
from scheduling.api import shapes
from scheduling.api.paging import CappedLimitOffset, whole


class ApprovalPages(CappedLimitOffset):
    default_limit = 50
    max_limit = 200


class Approvals(APIView):
    @extend_schema(
        parameters=[
            whole("limit", "at most this many (default 50, at most 200)"),
            whole("offset", "skip this many"),
        ],
        responses=shapes.PAGINATED_APPROVALS,
    )
    def get(self, request):
        """Leads (their team's jobs, not their own) and admins (all): blocked jobs, oldest first, with
        `rule` (why it waits) and `cost` (GPUs × hours × price per GPU-hour, as the approval rule counts
        it). Decide with `POST approve_url` or `POST reject_url` (`{"reason": "…"}`, required)."""
        if not is_lead_or_admin(request.user):
            raise PermissionDenied("Only leads and admins approve jobs.")
        paginator = ApprovalPages()
        page = paginator.paginate_queryset(approvals.inbox(request.user), request, view=self)
        return paginator.get_paginated_response([approvals.as_dict(e) for e in approvals.entries(page)])
