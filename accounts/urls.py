"""URLs of the accounts pages (mounted at /tokens/)."""

from django.urls import path

from accounts import views

urlpatterns = [
    path("", views.tokens_page, name="tokens"),
    path("<int:token_id>/revoke", views.token_revoke_page, name="token-revoke"),
]
