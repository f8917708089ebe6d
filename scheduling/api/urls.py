"""URLs of the REST API (mounted at /api/v1/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import SimpleRouter

from accounts import api as accounts_api
from accounts import people_api
from gpus import api as gpus_api
from notifications import api as notifications_api
from scheduling.api import actions, analytics, approvals, jobmetrics, queue, simulations, sweeps, views

router = SimpleRouter(trailing_slash=False)
router.register("policies", queue.PolicyViewSet, basename="policy")

urlpatterns = [
    path("jobs", views.JobListCreate.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>", views.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", views.JobCancel.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/audit", views.JobAuditList.as_view(), name="api-job-audit"),
    path("jobs/<int:job_id>/log", views.JobLog.as_view(), name="api-job-log"),
    path("jobs/<int:job_id>/log/search", views.JobLogSearch.as_view(), name="api-job-log-search"),
    path("jobs/<int:job_id>/log/download", views.JobLogDownload.as_view(), name="api-job-log-download"),
    path("jobs/<int:job_id>/metrics", jobmetrics.JobMetrics.as_view(), name="api-job-metrics"),
    path("jobs/<int:job_id>/pause", actions.JobPause.as_view(), name="api-job-pause"),
    path("jobs/<int:job_id>/resume", actions.JobResume.as_view(), name="api-job-resume"),
    path("jobs/<int:job_id>/approve", actions.JobApprove.as_view(), name="api-job-approve"),
    path("jobs/<int:job_id>/reject", actions.JobReject.as_view(), name="api-job-reject"),
    path("jobs/<int:job_id>/priority", actions.JobPriority.as_view(), name="api-job-priority"),
    path("jobs/<int:job_id>/share", actions.JobShare.as_view(), name="api-job-share"),
    path("sweeps/<int:sweep_id>", sweeps.SweepDetail.as_view(), name="api-sweep"),
    path("sweeps/<int:sweep_id>/cancel", sweeps.SweepCancel.as_view(), name="api-sweep-cancel"),
    path("approvals", approvals.Approvals.as_view(), name="api-approvals"),
    path("queue", queue.Queue.as_view(), name="api-queue"),
    path("queue/stats", queue.QueueStats.as_view(), name="api-queue-stats"),
    path("queue/me", queue.QueueMe.as_view(), name="api-queue-me"),
    path("queue/position/<int:job_id>", queue.QueuePosition.as_view(), name="api-queue-position"),
    # Seed 001's paths for the same actions (cancel, approve, reject?reason=…).
    path("queue/<int:job_id>/cancel", views.JobCancel.as_view(), name="api-queue-cancel"),
    path("queue/<int:job_id>/approve", actions.JobApprove.as_view(), name="api-queue-approve"),
    path("queue/<int:job_id>/reject", actions.QueueReject.as_view(), name="api-queue-reject"),
    path("queue/reorder", queue.QueueReorder.as_view(), name="api-queue-reorder"),
    path("queue/pause", queue.QueuePause.as_view(), name="api-queue-pause"),
    path("queue/resume", queue.QueueResume.as_view(), name="api-queue-resume"),
    path("queue/concurrency", queue.QueueConcurrency.as_view(), name="api-queue-concurrency"),
    path("queue/process", queue.QueueProcess.as_view(), name="api-queue-process"),
    path("queue/cleanup", queue.QueueCleanup.as_view(), name="api-queue-cleanup"),
    path("quota/status", queue.QuotaStatus.as_view(), name="api-quota-status"),
    path("admin/quotas", queue.QuotaAdmin.as_view(), name="api-admin-quotas"),
    path("analytics", analytics.Analytics.as_view(), name="api-analytics"),
    path("simulations", simulations.Simulations.as_view(), name="api-simulations"),
    path("simulations/<int:simulation_id>", simulations.SimulationDetail.as_view(), name="api-simulation"),
    path("templates", views.TemplateList.as_view(), name="api-templates"),
    path("templates/<slug:name>", views.TemplateDetail.as_view(), name="api-template"),
    path("me", accounts_api.Me.as_view(), name="api-me"),
    path("me/notifications", notifications_api.MyNotifications.as_view(), name="api-my-notifications"),
    path("me/notifications/webhook", notifications_api.MyWebhook.as_view(), name="api-my-webhook"),
    path("me/notifications/deliveries", notifications_api.MyDeliveries.as_view(), name="api-my-deliveries"),
    path("notifications/team-hooks", notifications_api.TeamHooks.as_view(), name="api-team-hooks"),
    path(
        "notifications/team-hooks/<int:hook_id>",
        notifications_api.TeamHookDetail.as_view(),
        name="api-team-hook",
    ),
    path("tokens", accounts_api.TokenListCreate.as_view(), name="api-tokens"),
    path("tokens/<int:token_id>", accounts_api.TokenRevoke.as_view(), name="api-token"),
    path("users", people_api.Users.as_view(), name="api-users"),
    path("users/<str:username>", people_api.UserDetail.as_view(), name="api-user"),
    path("teams", people_api.Teams.as_view(), name="api-teams"),
    path("teams/<str:name>", people_api.TeamDetail.as_view(), name="api-team"),
    path("levels", people_api.Levels.as_view(), name="api-levels"),
    path("levels/<str:level>", people_api.LevelDetail.as_view(), name="api-level"),
    path("nodes", gpus_api.NodeList.as_view(), name="api-nodes"),
    path("nodes/<str:name>/drain", gpus_api.NodeDrain.as_view(), name="api-node-drain"),
    path("nodes/<str:name>/undrain", gpus_api.NodeUndrain.as_view(), name="api-node-undrain"),
    path("system/status", gpus_api.SystemStatus.as_view(), name="api-system-status"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    *router.urls,
]
