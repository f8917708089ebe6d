"""Serve gpuq's pages, API and websockets with Daphne (ASGI), in one process or in several.

Daphne runs Django's synchronous views one at a time per process, so one process serves at most one
core's worth of requests. With `--workers N` (GPUQ_WEB_WORKERS) this command starts N Daphne processes,
each on its own socket bound to the same address with SO_REUSEPORT (the kernel spreads connections over
them), restarts one that dies, and stops them all on SIGTERM/SIGINT. Nothing is shared in memory: each
process runs its own live relay from the event table (so every websocket client gets every event
whichever process it reached) and its own ticker thread (one tick at a time per database, by lock).
"""

import logging
import socket

from daphne.cli import CommandLineInterface
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from scheduling import supervise

log = logging.getLogger("gpuq.web")


class Command(BaseCommand):
    help = __doc__.splitlines()[0]

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument(
            "--workers",
            type=int,
            default=None,
            help="Daphne processes (default GPUQ_WEB_WORKERS, 1)",
        )
        parser.add_argument("--reuse-port", action="store_true", help="(a worker of several)")

    def handle(self, *args, host, port, workers, reuse_port, **options):
        workers = settings.GPUQ_WEB_WORKERS if workers is None else workers
        if workers < 1:
            raise CommandError("--workers: at least 1")
        if workers > 1:
            return self._supervise(host, port, workers)
        pool_connections()
        freeze_startup_objects()
        if not reuse_port:
            CommandLineInterface().run(["-b", host, "-p", str(port), "queueproject.asgi:application"])
            return
        listener = _reusable_socket(host, port)
        CommandLineInterface().run(["--fd", str(listener.fileno()), "queueproject.asgi:application"])

    def _supervise(self, host: str, port: int, workers: int) -> None:
        _reusable_socket(host, port).close()  # a taken or bad address fails here, once, not in a loop
        argv = ["gpuq_web", "--host", host, "--port", str(port), "--workers", "1", "--reuse-port"]
        flag = supervise.StopFlag()
        children = [supervise.manage_py(*argv) for _ in range(workers)]
        try:
            while not flag.stopping:
                for i, child in enumerate(children):
                    if child.poll() is not None:
                        log.error("web worker %s exited (%s); starting another", child.pid, child.returncode)
                        children[i] = supervise.manage_py(*argv)
                flag.sleep(0.5)
        finally:
            supervise.stop(children, grace=10.0)


def freeze_startup_objects() -> None:
    """Load the application, its URL conf and every view, then move every object made so far out of the
    garbage collector's sight (gc.freeze): they live as long as the process, yet each full collection
    walked all of them (about 140,000) while a request waited. In-process single submissions went from
    82-84 to 96-101 a second (benchmarks/bulk.py, PostgreSQL, alternated)."""
    import gc

    from django.urls import get_resolver

    import queueproject.asgi  # noqa: F401  the application Daphne serves

    get_resolver().url_patterns  # noqa: B018  imports every view, serializer and template tag
    gc.collect()
    gc.freeze()


def pool_connections() -> None:
    """On PostgreSQL, serve this process's database connections from a pool (psycopg_pool, Django's
    `OPTIONS["pool"]`), before any is opened. Django runs each ASGI request's view in a thread of its
    own (gpuq reuses a few, GPUQ_WEB_THREADS, but a burst still gets new ones), so persistent
    connections (CONN_MAX_AGE) were opened per request and left to the garbage collector, and eight busy
    clients took the server past max_connections. Nodes keep persistent connections: their django-q2
    workers are forked (a pool's connections and threads cannot cross a fork)."""
    database = settings.DATABASES["default"]
    size = settings.GPUQ_WEB_DB_POOL_SIZE
    if database["ENGINE"] != "django.db.backends.postgresql" or not size:
        return
    database["CONN_MAX_AGE"] = 0  # a pooled connection goes back to the pool after each request
    # No check query before each use: through a dead link it hangs for the TCP timeout, connection after
    # connection; a broken connection fails its request with a 503 instead and the pool drops it.
    database["CONN_HEALTH_CHECKS"] = False
    database["OPTIONS"].setdefault("application_name", "gpuq-web")  # in pg_stat_activity
    database["OPTIONS"]["pool"] = {
        "min_size": min(2, size),
        "max_size": size,
        # A request waits as long as a connect may take for a connection (a free one, or a new one while
        # the database is away), then answers 503; the pool gives up on a failing reconnection as soon,
        # so that the next request tries afresh instead of after the pool's backoff (up to minutes).
        "timeout": database["OPTIONS"].get("connect_timeout", 5),
        "reconnect_timeout": database["OPTIONS"].get("connect_timeout", 5),
        "name": "gpuq-web",
    }


def _reusable_socket(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port that other processes of ours may bind too (SO_REUSEPORT)."""
    # IPv4 only: Twisted adopts a descriptor as AF_INET (Daphne's --fd gives it no other family).
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, family=socket.AF_INET, type=socket.SOCK_STREAM
        )[0]
    except socket.gaierror as error:
        raise CommandError(
            f"--workers above 1 needs an IPv4 address to listen on ({host}: {error})"
        ) from None
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        listener.bind(address)
    except OSError as error:
        listener.close()
        raise CommandError(f"cannot listen on {host}:{port}: {error}") from None
    listener.listen(1024)
    listener.setblocking(False)
    return listener
