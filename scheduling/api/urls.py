"""URLs of the REST API (mounted at /api/v1/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts import api as accounts_api
from gpus import api as gpus_api
from scheduling.api import actions, approvals, queue, views

router = SimpleRouter(trailing_slash=False)
router.register("policies", queue.PolicyViewSet, basename="policy")

urlpatterns = [
    path("jobs", views.JobListCreate.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>", views.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", views.JobCancel.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/log", views.JobLog.as_view(), name="api-job-log"),
    path("jobs/<int:job_id>/pause", actions.JobPause.as_view(), name="api-job-pause"),
    path("jobs/<int:job_id>/resume", actions.JobResume.as_view(), name="api-job-resume"),
    path("jobs/<int:job_id>/approve", actions.JobApprove.as_view(), name="api-job-approve"),
    path("jobs/<int:job_id>/reject", actions.JobReject.as_view(), name="api-job-reject"),
    path("jobs/<int:job_id>/priority", actions.JobPriority.as_view(), name="api-job-priority"),
    path("jobs/<int:job_id>/share", actions.JobShare.as_view(), name="api-job-share"),
    path("approvals", approvals.Approvals.as_view(), name="api-approvals"),
    path("queue", queue.Queue.as_view(), name="api-queue"),
    path("queue/stats", queue.QueueStats.as_view(), name="api-queue-stats"),
    path("queue/me", queue.QueueMe.as_view(), name="api-queue-me"),
    path("queue/position/<int:job_id>", queue.QueuePosition.as_view(), name="api-queue-position"),
    path("queue/reorder", queue.QueueReorder.as_view(), name="api-queue-reorder"),
    path("queue/pause", queue.QueuePause.as_view(), name="api-queue-pause"),
    path("queue/resume", queue.QueueResume.as_view(), name="api-queue-resume"),
    path("queue/concurrency", queue.QueueConcurrency.as_view(), name="api-queue-concurrency"),
    path("queue/process", queue.QueueProcess.as_view(), name="api-queue-process"),
    path("quota/status", queue.QuotaStatus.as_view(), name="api-quota-status"),
    path("admin/quotas", queue.QuotaAdmin.as_view(), name="api-admin-quotas"),
    path("templates", views.TemplateList.as_view(), name="api-templates"),
    path("me", accounts_api.Me.as_view(), name="api-me"),
    path("tokens", accounts_api.TokenListCreate.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", accounts_api.TokenRevoke.as_view(), name="api-token"),
    path("nodes", gpus_api.NodeList.as_view(), name="api-nodes"),
    path("nodes/<str:name>/drain", gpus_api.NodeDrain.as_view(), name="api-node-drain"),
    path("nodes/<str:name>/undrain", gpus_api.NodeUndrain.as_view(), name="api-node-undrain"),
    path("system/status", gpus_api.SystemStatus.as_view(), name="api-system-status"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
]
