"""Top-level URLs: the pages, the admin, login, the REST API under /api/v1/ and /metrics."""

from django.contrib import admin
from django.urls import include, path

from scheduling.metrics import metrics_view

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("scheduling.api.urls")),
    path("tokens/", include("accounts.urls")),
    path("metrics", metrics_view, name="metrics"),
    path("", include("scheduling.urls")),
]
