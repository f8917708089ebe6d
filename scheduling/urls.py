"""URLs of the pages."""

from django.urls import path

from scheduling import views

urlpatterns = [
    path("", views.queue_page, name="queue"),
]
