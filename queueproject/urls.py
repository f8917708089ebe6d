"""Top-level URLs: the pages, the admin, login, and the REST API under /api/v1/."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/", include("django.contrib.auth.urls")),
    path("api/v1/", include("scheduling.api.urls")),
    path("tokens/", include("accounts.urls")),
    path("", include("scheduling.urls")),
]
