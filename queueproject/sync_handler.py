"""Django's ASGI handler with the whole middleware chain and the view in one hop to the request thread.

Django builds an ASGI handler's middleware chain in async mode and adapts each part that is not: in gpuq's
chain the sync-only middlewares (api_errors, unavailable, lockout) sit between middlewares that run
async, so each request went to its thread, back to the event loop, to the thread for a middleware's
response hook, and to the thread again for the view: six hand-offs between threads in all, with the
request's end. Every middleware and view of gpuq is synchronous, so this handler builds the chain in
sync mode and calls it in one hop to the request's thread (queueproject/request_threads.py): two
hand-offs in all (tests/queueproject/test_request_threads.py counts them), about 0.4-0.6 ms of CPU
less per request.
"""

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class SyncChainHandler(ASGIHandler):
    def load_middleware(self, is_async=False):
        super().load_middleware(is_async=False)  # ASGIHandler asks for async mode

    async def get_response_async(self, request):
        return await sync_to_async(self.get_response, thread_sensitive=True)(request)


def get_asgi_application() -> SyncChainHandler:
    """django.core.asgi.get_asgi_application, with this handler."""
    import django

    django.setup(set_prefix=False)
    return SyncChainHandler()
