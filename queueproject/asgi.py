"""ASGI entry point: HTTP (pages, API, static files) now; websockets join here for live updates."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "queueproject.settings")
django_asgi = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

http = ASGIStaticFilesHandler(django_asgi) if settings.GPUQ_SERVE_STATIC else django_asgi
application = ProtocolTypeRouter({"http": http})
