"""URLs of the pages."""

from django.urls import path

from notifications.views import notifications_page
from scheduling import views

urlpatterns = [
    path("", views.queue_page, name="queue"),
    path("jobs/<int:job_id>/", views.job_page, name="job"),
    path("jobs/compare/", views.compare_page, name="compare"),
    path("jobs/<int:job_id>/<str:action>", views.job_action, name="job-action"),
    path("gpus/", views.gpus_page, name="gpus"),
    path("me/", views.my_jobs_page, name="me"),
    path("me/clear", views.my_jobs_clear, name="me-clear"),
    path("submit/", views.submit_page, name="submit"),
    path("approvals/", views.approvals_page, name="approvals"),
    path("analytics/", views.analytics_page, name="analytics"),
    path("notifications/", notifications_page, name="notifications"),
]
