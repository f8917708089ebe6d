"""ASGI entry point: HTTP (pages, API, static files) and websockets (live events)."""

import os

from queueproject.hardening import harden_process
from queueproject.sync_handler import get_asgi_application

harden_process()  # also when an ASGI server other than gpuq_web imports us
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "queueproject.settings")
django_asgi = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import path  # noqa: E402

from accounts.throttling import EarlyRefusal  # noqa: E402
from queueproject.origins import SameOriginValidator  # noqa: E402
from queueproject.request_threads import RequestThreads  # noqa: E402
from scheduling.live import EventsConsumer  # noqa: E402

http = ASGIStaticFilesHandler(django_asgi) if settings.GPUQ_SERVE_STATIC else django_asgi
if settings.GPUQ_WEB_THREADS:
    http = RequestThreads(http, settings.GPUQ_WEB_THREADS)  # reused threads, each with its connection
# Throttled API clients are answered before Django (accounts/throttling.py).
http = EarlyRefusal(http)
# Websockets: the session's user (logged-in only, checked by the consumer) from the site's own origin.
websocket = SameOriginValidator(AuthMiddlewareStack(URLRouter([path("ws/events", EventsConsumer.as_asgi())])))
application = ProtocolTypeRouter({"http": http, "websocket": websocket})
