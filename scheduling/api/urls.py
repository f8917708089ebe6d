"""URLs of the REST API (mounted at /api/v1/)."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from scheduling.api import views

urlpatterns = [
    path("jobs", views.JobListCreate.as_view(), name="api-jobs"),
    path("jobs/<int:job_id>", views.JobDetail.as_view(), name="api-job"),
    path("jobs/<int:job_id>/cancel", views.JobCancel.as_view(), name="api-job-cancel"),
    path("jobs/<int:job_id>/log", views.JobLog.as_view(), name="api-job-log"),
    path("queue", views.Queue.as_view(), name="api-queue"),
    path("templates", views.TemplateList.as_view(), name="api-templates"),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
