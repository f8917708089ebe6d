"""What the benchmarks share."""

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def setup_django(prefix: str, database_url: str = "") -> str:
    """Point gpuq at a fresh data folder and at `database_url` (SQLite in that folder when empty), set
    Django up in this process, and return the folder. Child processes inherit the environment."""
    data = tempfile.mkdtemp(prefix=prefix)
    os.environ.update(
        GPUQ_DATA_DIR=data, GPUQ_LOG_LEVEL="WARNING", DJANGO_SETTINGS_MODULE="queueproject.settings"
    )
    if database_url:
        os.environ["DATABASE_URL"] = database_url
    else:
        os.environ.pop("DATABASE_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    return data


def migrated_user(name: str):
    """Migrate the database and return a user for the benchmark's jobs (`name-<pid>`)."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return get_user_model().objects.get_or_create(username=f"{name}-{os.getpid()}")[0]


def percentile(values, q):
    """The q-th percentile (nearest rank) of `values`."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def register_nodes(count: int, gpus: str = "8x80GB") -> None:
    """`count` nodes named node0, node1, … with declared GPUs (no process behind them)."""
    from gpus.inventory import parse_declared
    from gpus.services import node_register

    for i in range(count):
        name = f"node{i}"
        node_register(
            name=name, backend="declared", gpus=parse_declared(gpus, node_name=name), labels={}, boot_id=""
        )


def fresh_database_url(prefix: str = "gpuq_bench") -> str:
    """A fresh database on the server DATABASE_URL names (PostgreSQL: a new database, dropped when this
    process exits), or "" for SQLite (a file in the data folder `setup_django` makes)."""
    import atexit
    from urllib.parse import urlsplit, urlunsplit

    url = os.environ.get("DATABASE_URL", "")
    if not url.startswith(("postgres://", "postgresql://")):
        return ""
    import psycopg

    parts = urlsplit(url)
    name = f"{prefix}_{os.getpid()}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
        conn.execute(f'CREATE DATABASE "{name}"')

    def drop():
        from django.db import connections

        connections.close_all()
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    atexit.register(drop)
    return urlunsplit(parts._replace(path=f"/{name}"))


def start_web(port: int, **extra_env: str):
    """A real web server (`gpuq_web`, Daphne) on this process's database and SECRET_KEY; returns the
    process and its base URL once it answers."""
    import subprocess
    import time

    import httpx
    from django.conf import settings
    from django.db import connection

    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY, **extra_env}  # one key for every process
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "gpuq_web", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            httpx.get(f"{base}/accounts/login/", timeout=1)
            return server, base
        except httpx.TransportError:
            time.sleep(0.1)
    server.terminate()
    raise SystemExit("the web server did not start")


def logged_in(base: str, username: str, password: str):
    """Wait for the gpuq_web at `base` to answer, log in; an httpx client holding the session."""
    import time

    import httpx

    for _ in range(600):
        try:
            httpx.get(f"{base}/accounts/login/", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.1)
    web = httpx.Client(base_url=base, timeout=10, follow_redirects=True)
    web.get("/accounts/login/")
    web.post(
        "/accounts/login/",
        data={"username": username, "password": password, "csrfmiddlewaretoken": web.cookies["csrftoken"]},
        headers={"Referer": f"{base}/accounts/login/"},
    )
    return web
