"""gpuq settings: every value comes from the environment, with defaults for the embedded deployment."""

import hashlib
import os
import socket
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from queueproject.env import (
    env_bool,
    env_choice,
    env_float,
    env_int,
    env_list,
    env_networks,
    env_proxy_ssl_header,
    env_rate,
    env_str,
)
from queueproject.secret_key import secret_key_setting
from scheduling import leases

BASE_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = Path(env_str("GPUQ_DATA_DIR", str(BASE_DIR / "data"))).resolve()
# 0711: jobs traverse it to reach their own folders; nobody but the server lists or reads it.
try:
    DATA_DIR.mkdir(parents=True)
    DATA_DIR.chmod(0o711)  # whatever the umask
except FileExistsError:
    pass  # an existing folder keeps the mode its owner chose

DEBUG = env_bool("DEBUG", False)
# One key signs sessions, CSRF tokens and the tasks handed to nodes (django-q2 drops a task signed with
# another key), so every process of one gpuq needs the same: SECRET_KEY when set; else, on the embedded
# default (no DATABASE_URL), the install's own key in the data folder (0600), made on first start.
SECRET_KEY = secret_key_setting(key_file=None if env_str("DATABASE_URL", "") else DATA_DIR / "secret-key")
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

# HTTPS and browser protections (what `manage.py check --deploy` asks for). The defaults keep plain
# http://localhost working for the embedded default; the README's production settings turn HTTPS on.
SECURE_PROXY_SSL_HEADER = env_proxy_ssl_header("SECURE_PROXY_SSL_HEADER")  # behind a TLS proxy only
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", False)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", False)
SESSION_COOKIE_HTTPONLY = env_bool("SESSION_COOKIE_HTTPONLY", True)
SESSION_COOKIE_AGE = env_int("SESSION_COOKIE_AGE", 14 * 24 * 3600, minimum=60)
SECURE_CONTENT_TYPE_NOSNIFF = env_bool("SECURE_CONTENT_TYPE_NOSNIFF", True)
SECURE_REFERRER_POLICY = env_choice(
    "SECURE_REFERRER_POLICY",
    "same-origin",
    [
        "no-referrer",
        "no-referrer-when-downgrade",
        "origin",
        "origin-when-cross-origin",
        "same-origin",
        "strict-origin",
        "strict-origin-when-cross-origin",
        "unsafe-url",
    ],
)
SECURE_CROSS_ORIGIN_OPENER_POLICY = env_choice(
    "SECURE_CROSS_ORIGIN_OPENER_POLICY",
    "same-origin",
    ["same-origin", "same-origin-allow-popups", "unsafe-none"],
)
X_FRAME_OPTIONS = env_choice("X_FRAME_OPTIONS", "DENY", ["DENY", "SAMEORIGIN"])

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "guardian",
    "accounts",
    "gpus",
    "scheduling",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Compresses pages, fragments and the API, except responses marked as carrying a secret (BREACH).
    "queueproject.compression.GZipMiddleware",
    # Every 4xx under /api/ is JSON; a body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 before it is read.
    "queueproject.api_errors.ApiErrorsMiddleware",
    "queueproject.unavailable.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "accounts.lockout.LoginLockoutMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "queueproject.urls"
ASGI_APPLICATION = "queueproject.asgi.application"
# Object permissions (django-guardian): a job shared with a user (scheduling.JobUserObjectPermission).
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # no guardian anonymous user: every page and endpoint needs a login
# Each web process relays the Event table to its own websocket clients (scheduling.relay): no broker and
# no channel layer (whose in-memory queues drop messages past their capacity without a word).
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL (PostgreSQL in production); SQLite in the data folder by default.
SQLITE_PATH = DATA_DIR / "gpuq.sqlite3"
DATABASES = {"default": dj_database_url.parse(env_str("DATABASE_URL", f"sqlite:///{SQLITE_PATH}"))}
_SQLITE = DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
if _SQLITE:
    # Django's SQLite backend, whose kept connections notice a database file that was replaced
    # (queueproject/sqlite3/base.py).
    DATABASES["default"]["ENGINE"] = "queueproject.sqlite3"
    # WAL lets readers work while one writer writes; IMMEDIATE takes the write lock at BEGIN so two
    # writers queue on the busy timeout instead of failing with "database is locked" mid-transaction.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": env_float("GPUQ_SQLITE_TIMEOUT_SECONDS", 20.0, minimum=0.1),
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    # Tests that start real processes need a database file those processes can open.
    DATABASES["default"]["TEST"] = {"NAME": str(DATA_DIR / "test-gpuq.sqlite3")}
# Persistent connections: a new PostgreSQL connection per loop costs more than the work; a new SQLite one
# starts with an empty page cache and registers Django's functions again. This serves the long-lived
# loops and threads (node, executors, relay, ticker) and the web process's request threads
# (GPUQ_WEB_THREADS); on PostgreSQL gpuq_web pools its connections instead. Health checks replace a dropped
# connection.
DATABASES["default"]["CONN_MAX_AGE"] = env_float("GPUQ_DB_CONN_MAX_AGE", 300.0, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if not _SQLITE:
    # A database that is away must answer with an error, never with silence: bounded connects, TCP
    # keepalives and a bound on unacknowledged sends (a black-holed link), and a statement timeout.
    _connect = env_float("GPUQ_DB_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=1)
    _statement = env_float("GPUQ_DB_STATEMENT_TIMEOUT_SECONDS", 60.0)
    DATABASES["default"]["OPTIONS"] = {
        "connect_timeout": max(2, round(_connect)),  # libpq: whole seconds, at least 2
        "keepalives": 1,
        "keepalives_idle": 5,
        "keepalives_interval": 2,
        "keepalives_count": 3,
        "tcp_user_timeout": int(_connect * 2000),
        # libpq's `options` replaces PGOPTIONS: keep what the environment asks for (a lock timeout, say).
        **(
            {"options": f"{env_str('PGOPTIONS', '')} -c statement_timeout={int(_statement * 1000)}".strip()}
            if _statement
            else {}
        ),
        **DATABASES["default"].get("OPTIONS", {}),
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "static"

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "accounts.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
        "accounts.authentication.AnonymousRateLimit",  # counts what is left: anonymous requests
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "scheduling.api.paging.CappedLimitOffset",
    "PAGE_SIZE": env_int("GPUQ_PAGE_SIZE", 50, minimum=1),
    "EXCEPTION_HANDLER": "scheduling.api.errors.exception_handler",
    # JSON only, with exact types (queueproject/strict.py); form bodies are a 415.
    "DEFAULT_PARSER_CLASSES": ["queueproject.strict.StrictJSONParser"],
    # Rates come from GPUQ_THROTTLE_* below; each class reads its own setting (accounts/throttling.py).
    # Anonymous requests are counted by AnonymousRateLimit above; submissions by SubmitThrottle.
    "DEFAULT_THROTTLE_CLASSES": ["accounts.throttling.UserThrottle"],
    # The client's address is REMOTE_ADDR unless gpuq sits behind that many proxies (X-Forwarded-For).
    "NUM_PROXIES": env_int("GPUQ_NUM_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "gpuq API",
    "DESCRIPTION": "Submit, watch and steer GPU jobs.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
    "SWAGGER_UI_DIST": "SIDECAR",  # served by gpuq itself: no CDN needed
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    # A transition's from_status and to_status share one enum (else `check --deploy` warns).
    "ENUM_NAME_OVERRIDES": {
        "JobStatusEnum": "scheduling.states.Status",
        "WaitReasonEnum": "scheduling.models.WaitReason",
        "SimulationStatusEnum": "scheduling.models.Simulation.Status",
        "NotificationKindEnum": "notifications.models.Kind",
    },
    # Input and output shapes apart (read-only fields are not asked for), and one `Error` shape declared
    # for every 4xx of every operation (queueproject/schema.py).
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "queueproject.schema.add_error_responses",
    ],
    # The ways to log in that the schema documents (AnonymousRateLimit only counts anonymous requests).
    "AUTHENTICATION_WHITELIST": [
        "accounts.authentication.HashedTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
}

# --- gpuq's own settings (each documented in the README) ---
GPUQ_NODE_NAME = env_str("GPUQ_NODE_NAME", socket.gethostname().split(".")[0] or "local")
GPUQ_NODE_LOCAL = env_bool("GPUQ_NODE_LOCAL", False)  # set by gpuq_serve for the server's own node
# Where the other nodes of a gang job reach this one when it runs rank 0 (MASTER_ADDR).
GPUQ_NODE_ADDRESS = env_str("GPUQ_NODE_ADDRESS", socket.gethostname() or "127.0.0.1")
GPUQ_INVENTORY = env_str("GPUQ_INVENTORY", "auto")  # auto | nvml | declared
GPUQ_DECLARED_GPUS = env_str("GPUQ_DECLARED_GPUS", "2x24GB")
GPUQ_LOG_DIR = Path(env_str("GPUQ_LOG_DIR", str(DATA_DIR / "logs"))).resolve()


def _others_may_pass(path: Path) -> bool:
    """Every existing folder from / down to `path` lets other accounts through (o+x)."""
    return all(not p.exists() or p.stat().st_mode & 0o001 for p in [*reversed(path.parents), path])


# Jobs run as another account than a root server (scheduling/runas.py) and must reach their working and
# checkpoint folders. When the data folder lies where others cannot pass (a checkout in root's home),
# those folders go under /var/lib/gpuq/<a name for this data folder> instead, which is made 0711.
_JOB_BASE = DATA_DIR
if os.geteuid() == 0 and not _others_may_pass(DATA_DIR):
    _JOB_BASE = Path("/var/lib/gpuq") / hashlib.sha256(str(DATA_DIR).encode()).hexdigest()[:12]
# Per-job working folders (the job's cwd and progress file), one per job.
GPUQ_JOBS_DIR = Path(env_str("GPUQ_JOBS_DIR", str(_JOB_BASE / "jobs"))).resolve()
# Per-job checkpoint folders, kept across attempts: put it on storage all nodes share.
GPUQ_CHECKPOINT_ROOT = Path(env_str("GPUQ_CHECKPOINT_ROOT", str(_JOB_BASE / "checkpoints"))).resolve()
# Which Unix account runs jobs (scheduling/runas.py): auto | user (each owner's profile.unix_username) |
# account (GPUQ_RUN_AS_ACCOUNT). A job never runs as root unless GPUQ_RUN_JOBS_AS_ROOT_UNSAFE says so.
GPUQ_RUN_AS = env_str("GPUQ_RUN_AS", "auto").strip().lower()
GPUQ_RUN_AS_ACCOUNT = env_str("GPUQ_RUN_AS_ACCOUNT", "nobody").strip()
GPUQ_RUN_JOBS_AS_ROOT_UNSAFE = env_bool("GPUQ_RUN_JOBS_AS_ROOT_UNSAFE", False)
# Logs shipped to the database (scheduling.logship): the last this many bytes of each job are kept there.
GPUQ_LOG_DB_MAX_BYTES = env_int("GPUQ_LOG_DB_MAX_BYTES", 16 * 1024 * 1024, minimum=64 * 1024)
# The most a job's GPUQ_PROGRESS_FILE may hold; a larger one is stored as a short reason instead.
GPUQ_PROGRESS_MAX_BYTES = env_int("GPUQ_PROGRESS_MAX_BYTES", 16 * 1024, minimum=256)
# Charts of a job's life (scheduling/timeseries.py): the most points kept per series of an attempt (a full
# series is thinned to half, evenly over its time span) and the most series from one job's progress file.
GPUQ_JOB_METRICS_MAX_POINTS = env_int("GPUQ_JOB_METRICS_MAX_POINTS", 1000, minimum=10)
GPUQ_JOB_METRICS_MAX_SERIES = env_int("GPUQ_JOB_METRICS_MAX_SERIES", 20, minimum=1)
# While the database is away the API answers 503 with this Retry-After.
GPUQ_RETRY_AFTER_SECONDS = env_int("GPUQ_RETRY_AFTER_SECONDS", 5, minimum=1)
# How long an Idempotency-Key of POST /api/v1/jobs is remembered.
GPUQ_IDEMPOTENCY_HOURS = env_float("GPUQ_IDEMPOTENCY_HOURS", 24.0, minimum=0.01)
# Retention (scheduling/retention.py): where the transition logs of removed jobs are archived (gzipped
# JSON Lines, one file a month), how long events stay for reconnecting clients, how many jobs one
# cleanup transaction removes, and how long expired API tokens and django-q2 task results are kept.
GPUQ_ARCHIVE_DIR = Path(env_str("GPUQ_ARCHIVE_DIR", str(DATA_DIR / "archive"))).resolve()
GPUQ_EVENT_WINDOW_HOURS = env_float("GPUQ_EVENT_WINDOW_HOURS", 24.0, minimum=0.01)
GPUQ_RETENTION_BATCH = env_int("GPUQ_RETENTION_BATCH", 200, minimum=1)
GPUQ_EXPIRED_TOKEN_DAYS = env_float("GPUQ_EXPIRED_TOKEN_DAYS", 30.0)
GPUQ_TASK_RESULT_DAYS = env_float("GPUQ_TASK_RESULT_DAYS", 7.0)
# Serve /static/ from the app itself (fine for the embedded default; use a web server at scale).
GPUQ_SERVE_STATIC = env_bool("GPUQ_SERVE_STATIC", True)
# How often a websocket re-reads its user and session, closing when either ended (scheduling.live).
GPUQ_WS_RECHECK_SECONDS = env_float("GPUQ_WS_RECHECK_SECONDS", 30.0, minimum=0.05)
# The live relay (scheduling/relay.py): events a socket may fall behind before it is told to resync; on
# SQLite the longest wait between two looks at the database when idle; on PostgreSQL, where NOTIFY wakes
# the relay, a look every so often anyway.
GPUQ_WS_QUEUE_EVENTS = env_int("GPUQ_WS_QUEUE_EVENTS", 5000, minimum=1)
GPUQ_EVENTS_IDLE_POLL_SECONDS = env_float("GPUQ_EVENTS_IDLE_POLL_SECONDS", 0.5, minimum=0.02)
GPUQ_EVENTS_SAFETY_SECONDS = env_float("GPUQ_EVENTS_SAFETY_SECONDS", 30.0, minimum=1)
# How often each web process's live relay writes the lag it saw (event written → relayed) for /metrics.
GPUQ_RELAY_REPORT_SECONDS = env_float("GPUQ_RELAY_REPORT_SECONDS", 15.0, minimum=0)
GPUQ_KILL_GRACE_SECONDS = env_float("GPUQ_KILL_GRACE_SECONDS", 10.0)
GPUQ_HEARTBEAT_SECONDS = env_float("GPUQ_HEARTBEAT_SECONDS", 2.0, minimum=0.05)
GPUQ_LEASE_SECONDS = env_float("GPUQ_LEASE_SECONDS", 20.0, minimum=0.5)
# The reaper takes an attempt over only after lease + kill grace + this margin (scheduling.leases).
GPUQ_LEASE_MARGIN_SECONDS = env_float("GPUQ_LEASE_MARGIN_SECONDS", 5.0)
# A dispatched attempt no executor claimed within this time is requeued (not counted as a fault).
GPUQ_DISPATCH_TIMEOUT_SECONDS = env_float("GPUQ_DISPATCH_TIMEOUT_SECONDS", 120.0, minimum=1)
# Test only: the boot id this process reports instead of the kernel's (a node "on another machine").
GPUQ_BOOT_ID_OVERRIDE = env_str("GPUQ_BOOT_ID_OVERRIDE", "")
# Test only: seconds this process's wall clock (Django's timezone.now) is off, as on a machine whose clock
# is wrong; the fault tests skew nodes with it (scheduling/apps.py applies it).
GPUQ_CLOCK_OFFSET_SECONDS = env_float("GPUQ_CLOCK_OFFSET_SECONDS", 0.0, minimum=-float("inf"))
GPUQ_NODE_TIMEOUT_SECONDS = env_float("GPUQ_NODE_TIMEOUT_SECONDS", 15.0, minimum=0.5)
try:  # refuse at start a configuration that lets a job's re-run overlap its old process
    leases.check(
        heartbeat=GPUQ_HEARTBEAT_SECONDS,
        lease=GPUQ_LEASE_SECONDS,
        grace=GPUQ_KILL_GRACE_SECONDS,
        margin=GPUQ_LEASE_MARGIN_SECONDS,
    )
except leases.OverlapError as error:
    raise ImproperlyConfigured(str(error)) from None
GPUQ_TICK_SECONDS = env_float("GPUQ_TICK_SECONDS", 5.0, minimum=0.1)
# While jobs wait and nothing asks for a tick, a node plans the whole queue at most this often (what time
# alone changes: ageing, windows, quota days, expiry); changes, due start times and dispatches tick at
# once. 0: every GPUQ_TICK_SECONDS.
GPUQ_PLAN_SECONDS = env_float("GPUQ_PLAN_SECONDS", 30.0, minimum=0)
# How often a node reads its GPUs again (readings, foreign processes, GPUs gone or failing).
GPUQ_INVENTORY_REFRESH_SECONDS = env_float("GPUQ_INVENTORY_REFRESH_SECONDS", 30.0, minimum=1)
GPUQ_CANCEL_POLL_SECONDS = env_float("GPUQ_CANCEL_POLL_SECONDS", 0.25, minimum=0.01)
GPUQ_DEFAULT_RUNTIME_SECONDS = env_float("GPUQ_DEFAULT_RUNTIME_SECONDS", 3600.0, minimum=1)
# Every job has a time limit: the submit's, else its template's default, else its level's, else this.
GPUQ_DEFAULT_TIME_LIMIT_SECONDS = env_int("GPUQ_DEFAULT_TIME_LIMIT_SECONDS", 86400, minimum=1)
GPUQ_ESTIMATE_DEPTH = env_int("GPUQ_ESTIMATE_DEPTH", 100, minimum=1)
# Lists (pages and API): rows per page by default, and the most one request may ask for (`size`, `limit`).
GPUQ_PAGE_SIZE = env_int("GPUQ_PAGE_SIZE", 50, minimum=1)
# A tick simulates estimated start times (many plans) at most this often; other ticks keep the last ones.
GPUQ_ESTIMATE_SECONDS = env_float("GPUQ_ESTIMATE_SECONDS", 5.0, minimum=0)
# A tick asked for while a tick ran waits this many times as long as that tick took (at most
# GPUQ_TICK_SECONDS) before it runs: a long queue's ticks then take at most about half of their process.
# 0: at once.
GPUQ_TICK_SPACING = env_float("GPUQ_TICK_SPACING", 1.0, minimum=0)
# … when that tick took at least this long (a short tick is followed at once: waiting would only delay).
GPUQ_TICK_SPACING_ABOVE_SECONDS = env_float("GPUQ_TICK_SPACING_ABOVE_SECONDS", 0.1, minimum=0)
GPUQ_MAX_PAGE_SIZE = max(env_int("GPUQ_MAX_PAGE_SIZE", 500, minimum=1), GPUQ_PAGE_SIZE)
# The longest range the analytics page and API cover at once (hourly figures: 24 per day).
GPUQ_ANALYTICS_MAX_DAYS = env_int("GPUQ_ANALYTICS_MAX_DAYS", 31, minimum=1)
GPUQ_DEFAULT_MAX_ATTEMPTS = env_int("GPUQ_DEFAULT_MAX_ATTEMPTS", 3, minimum=1)
# Jobs one bulk submission or sweep may create (POST /api/v1/jobs with a list or a "sweep").
GPUQ_BULK_MAX_JOBS = env_int("GPUQ_BULK_MAX_JOBS", 10000, minimum=1)
GPUQ_JOB_ENV_PASSTHROUGH = env_list(
    "GPUQ_JOB_ENV_PASSTHROUGH", ["PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "USER", "LOGNAME"]
)

# --- limits on abuse (accounts/throttling.py, accounts/lockout.py); a rate is "N/period", empty = off ---
GPUQ_THROTTLE_USER = env_rate("GPUQ_THROTTLE_USER", "1200/min")
GPUQ_THROTTLE_ANON = env_rate("GPUQ_THROTTLE_ANON", "120/min")
GPUQ_THROTTLE_SUBMIT = env_rate("GPUQ_THROTTLE_SUBMIT", "120/min")
GPUQ_THROTTLE_AUTH_FAILURES = env_rate("GPUQ_THROTTLE_AUTH_FAILURES", "20/min")
GPUQ_LOGIN_MAX_FAILURES = env_int("GPUQ_LOGIN_MAX_FAILURES", 10, minimum=1)
GPUQ_LOGIN_LOCKOUT_SECONDS = env_int("GPUQ_LOGIN_LOCKOUT_SECONDS", 900, minimum=1)
GPUQ_TOKEN_MAX_DAYS = env_int("GPUQ_TOKEN_MAX_DAYS", 90, minimum=1)

# What-if simulator (scheduling.simulations): jobs a run may replay, history days it may read, runs of at
# most this many jobs × policy sets done in the request (bigger ones are django-q2 tasks), days kept.
GPUQ_SIMULATION_MAX_JOBS = env_int("GPUQ_SIMULATION_MAX_JOBS", 20000, minimum=1)
GPUQ_SIMULATION_MAX_DAYS = env_int("GPUQ_SIMULATION_MAX_DAYS", 90, minimum=1)
GPUQ_SIMULATION_INLINE_JOBS = env_int("GPUQ_SIMULATION_INLINE_JOBS", 2000, minimum=0)
GPUQ_SIMULATION_KEEP_DAYS = env_int("GPUQ_SIMULATION_KEEP_DAYS", 30, minimum=1)
# Throttles count in Django's cache. The default is per process: with several web processes each counts
# on its own (limits multiply by the number of processes). Django's RedisCache would need redis-py.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "gpuq"}}

# Daphne processes of `gpuq_web` (and so of `gpuq_serve`): Daphne runs views one at a time per process,
# so more processes serve more requests at once, up to the machine's cores (scheduling/.../gpuq_web.py).
GPUQ_WEB_WORKERS = env_int("GPUQ_WEB_WORKERS", 1, minimum=1)
# PostgreSQL: connections each web process keeps in its pool (requests, relay, ticker); 0: no pool.
GPUQ_WEB_DB_POOL_SIZE = env_int("GPUQ_WEB_DB_POOL_SIZE", 10)
# Long-lived threads per web process for requests' synchronous code, each keeping its database connection
# (queueproject/request_threads.py); a request that finds none idle gets a thread of its own. 0: a thread
# per request, Django's own way.
GPUQ_WEB_THREADS = env_int("GPUQ_WEB_THREADS", 8, minimum=0)

# --- /metrics (scheduling/metrics.py): a scrape sends `Authorization: Bearer <token>` or comes from an
# address of the allow-list; anything else is refused (403) ---
GPUQ_METRICS_TOKEN = env_str("GPUQ_METRICS_TOKEN", "")
GPUQ_METRICS_ALLOW = env_networks("GPUQ_METRICS_ALLOW", ["127.0.0.1/32", "::1/128"])

# --- notifications (notifications/; README "Notifications") ---
GPUQ_NOTIFY_ENABLED = env_bool("GPUQ_NOTIFY_ENABLED", True)
# The django-q2 queue of the sending tasks; each node starts a small cluster on it when there is something
# to send (never the executors' cluster, whose workers are busy for as long as their jobs run).
GPUQ_NOTIFY_QUEUE = env_str("GPUQ_NOTIFY_QUEUE", "gpuq-notify")
GPUQ_NOTIFY_WORKERS = env_int("GPUQ_NOTIFY_WORKERS", 1, minimum=1)
GPUQ_NOTIFY_TIMEOUT_SECONDS = env_float("GPUQ_NOTIFY_TIMEOUT_SECONDS", 10.0, minimum=0.1)
GPUQ_NOTIFY_MAX_ATTEMPTS = env_int("GPUQ_NOTIFY_MAX_ATTEMPTS", 8, minimum=1)
GPUQ_NOTIFY_BACKOFF_SECONDS = env_float("GPUQ_NOTIFY_BACKOFF_SECONDS", 30.0)
GPUQ_NOTIFY_BACKOFF_MAX_SECONDS = env_float("GPUQ_NOTIFY_BACKOFF_MAX_SECONDS", 3600.0)
GPUQ_NOTIFY_LOG_LINES = env_int("GPUQ_NOTIFY_LOG_LINES", 20)
GPUQ_NOTIFY_WAITING_SECONDS = env_float("GPUQ_NOTIFY_WAITING_SECONDS", 4 * 3600.0)  # 0: no waiting_long
GPUQ_NOTIFY_DELIVERY_DAYS = env_float("GPUQ_NOTIFY_DELIVERY_DAYS", 30.0, minimum=0.01)
# Webhooks to these addresses are refused when sent (cloud metadata services by default).
GPUQ_NOTIFY_WEBHOOK_DENY = env_networks("GPUQ_NOTIFY_WEBHOOK_DENY", ["169.254.0.0/16", "fe80::/10"])
GPUQ_NOTIFY_BASE_URL = env_str("GPUQ_NOTIFY_BASE_URL", "")  # e.g. https://gpuq.example.org: links in messages
# E-mail: Django's mail framework, any SMTP server.
EMAIL_BACKEND = GPUQ_EMAIL_BACKEND = env_str(
    "GPUQ_EMAIL_BACKEND", "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = env_str("GPUQ_EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("GPUQ_EMAIL_PORT", 25, minimum=1)
EMAIL_HOST_USER = env_str("GPUQ_EMAIL_USER", "")
EMAIL_HOST_PASSWORD = env_str("GPUQ_EMAIL_PASSWORD", "")
EMAIL_USE_TLS = env_bool("GPUQ_EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("GPUQ_EMAIL_USE_SSL", False)
EMAIL_TIMEOUT = GPUQ_NOTIFY_TIMEOUT_SECONDS
DEFAULT_FROM_EMAIL = env_str("GPUQ_EMAIL_FROM", "gpuq@localhost")

# --- django-q2 ---
# Each node's executor cluster consumes the queue named after the node (Q_CLUSTER_NAME, set only by the
# node process). Settings follow DESIGN.md's pitfalls: no broker redelivery, no task retry, one task
# prefetched, in effect no timeout (gpuq enforces time limits itself; a timeout of years below `retry`
# keeps django-q2 from warning that a missing timeout could outlast the retry).
Q_CLUSTER = {
    "name": env_str("GPUQ_Q_NAME", "gpuq"),
    "orm": "default",
    "workers": env_int("GPUQ_EXECUTOR_WORKERS", 2, minimum=1),
    "queue_limit": 1,
    "timeout": 9 * 365 * 24 * 3600,
    "retry": 10 * 365 * 24 * 3600,
    "ack_failures": True,
    "max_attempts": 1,
    "poll": env_float("GPUQ_Q_POLL_SECONDS", 0.05, minimum=0.01),
    # The sentinel's check of its processes (and its status record): every 0.5 s by default, which is
    # most of an idle cluster's CPU; our tasks have no django-q2 timeout for it to count down.
    "guard_cycle": 2.0,
    # Waits for work instead of polling, with its lock times from the database's clock (machines' clocks
    # may disagree): scheduling/broker.py. "" is django-q2's own ORM broker (for benchmarks' baselines).
    "broker_class": env_str("GPUQ_Q_BROKER_CLASS", "scheduling.broker.WakingORM"),
    "catch_up": False,
    "save_limit": 1000,
    "label": "Tasks",
    "log_level": env_str("GPUQ_Q_LOG_LEVEL", "WARNING"),
    "ALT_CLUSTERS": {},
}

# The broker's pusher looks at its queue at least this often even when nothing woke it (bounds a
# cluster's stop).
GPUQ_Q_IDLE_POLL_SECONDS = env_float("GPUQ_Q_IDLE_POLL_SECONDS", 1.0, minimum=0.05)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "gpuq": {"handlers": ["console"], "level": env_str("GPUQ_LOG_LEVEL", "INFO"), "propagate": False},
        "django_q": {"handlers": ["console"], "level": "WARNING", "propagate": False},
    },
}
