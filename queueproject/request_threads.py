"""Long-lived threads for HTTP requests' synchronous code (views, middleware, the ORM).

Django's ASGI handler runs each request's synchronous code in a thread made for that request
(asgiref's ThreadSensitiveContext) and ends it afterwards. So every request started a thread, opened a
database connection in it (SQLite: a new connection and its functions registered; Django's connections
belong to their thread), and joined the thread at its end: about a seventh of a single submission's CPU.

`RequestThreads` wraps the ASGI application and gives each HTTP request one of a few threads that live
as long as the process (asgiref's ThreadSensitiveContext with an executor of our own; Django's own
context then leaves it alone), choosing one that is idle. A thread keeps its database connection
between requests as a node's loops do (CONN_MAX_AGE; on PostgreSQL the web process's pool serves it).
When every thread is busy (a slow request, a burst), the request gets a thread of its own as before:
nothing waits behind another request for a thread.
"""

from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.db import connections


class RequestThreads:
    def __init__(self, app, threads: int):
        self.app = app
        self._executors = [
            ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"gpuq-request-{i}") for i in range(threads)
        ]
        self._idle = list(range(threads))  # only the event loop's thread touches this

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or not self._idle:
            return await self.app(scope, receive, send)
        index = self._idle.pop()
        try:
            async with ThreadSensitiveContext(executor=self._executors[index]):
                return await self.app(scope, receive, send)
        finally:
            self._idle.append(index)

    def close_connections(self) -> None:
        """Close the database connections the threads keep (tests, before their database goes)."""
        for executor in self._executors:
            executor.submit(connections.close_all).result()
