"""Shared fixtures: named people (alice, bob, root the admin), a node with two simulated GPUs, API
clients, and the environment a child process needs to reach the test database."""

import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import ApiToken, Level, Profile, Team
from gpus.inventory import parse_declared
from gpus.services import node_register
from scheduling import listing, ticker
from scheduling.environment import world_executable

# Threads (the ticker's, a test's) close their connections after their work, so that the test database
# can be dropped at the end (production keeps them: GPUQ_DB_CONN_MAX_AGE).
settings.DATABASES["default"]["CONN_MAX_AGE"] = 0


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """scripts/test runs the suite as several pytest processes at once (GPUQ_TEST_SHARD names each):
    each gets test databases of its own (test_gpuq_<shard>, data/test-gpuq.sqlite3_<shard>)."""
    from pytest_django.fixtures import _set_suffix_to_test_databases

    if shard := os.environ.get("GPUQ_TEST_SHARD"):
        _set_suffix_to_test_databases(shard)


# Jobs started by a root test process run as `nobody` (scheduling/runas.py): they must reach their
# folders (pytest's own temporary folders are 0700) and run a Python they may execute.
_TRAVERSABLE_ROOT = Path(tempfile.gettempdir()) / f"gpuq-tests-{os.geteuid()}"


# A Python interpreter any job account can run (the virtual environment's may live in root's home).
JOB_PYTHON = (
    sys.executable
    if world_executable(sys.executable)
    else next(
        (p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), sys.executable
    )
)


def traversable_dir(prefix: str) -> Path:
    """A new folder under a root that any job account may traverse (0711, not listable)."""
    _TRAVERSABLE_ROOT.mkdir(mode=0o711, exist_ok=True)
    assert _TRAVERSABLE_ROOT.stat().st_uid == os.geteuid(), f"{_TRAVERSABLE_ROOT} is not ours"
    _TRAVERSABLE_ROOT.chmod(0o711)
    path = Path(tempfile.mkdtemp(prefix=re.sub(r"\W", "_", prefix)[:40] + "-", dir=_TRAVERSABLE_ROOT))
    path.chmod(0o711)
    return path


@pytest.fixture
def tmp_path(request) -> Path:
    """Like pytest's, but jobs of any account can reach the folders gpuq makes in it."""
    path = traversable_dir(request.node.name)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def job_writable(path: Path) -> Path:
    """A folder that jobs, whatever account they run as, may write in (for what a test job reports)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(0o777)
    return path


@pytest.fixture
def unix_accounts() -> dict:
    """Unix accounts for run-as tests (gpuqt-alice, gpuqt-bob), made once and kept (idempotent)."""
    from tests.runas import ALICE, BOB, ensure_account

    return {name: ensure_account(name) for name in (ALICE, BOB)}


@pytest.fixture(autouse=True)
def _isolated_data(settings, tmp_path):
    """Each test writes job logs and progress files under its own temporary folder, with short timings."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
    settings.DATA_DIR = tmp_path
    settings.GPUQ_JOBS_DIR = tmp_path / "jobs"
    settings.GPUQ_LOG_DIR = tmp_path / "logs"
    settings.GPUQ_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    settings.GPUQ_ARCHIVE_DIR = tmp_path / "archive"
    settings.GPUQ_KILL_GRACE_SECONDS = 2.0
    settings.GPUQ_ESTIMATE_SECONDS = 0  # each tick stores fresh estimates
    settings.GPUQ_HEARTBEAT_SECONDS = 0.2
    settings.GPUQ_CANCEL_POLL_SECONDS = 0.05
    settings.GPUQ_LEASE_SECONDS = 2.0
    settings.GPUQ_LEASE_MARGIN_SECONDS = 1.5  # take-over after 2 + 2 + 1.5 s of silence
    # Throttle and lockout counts live in the (per-process) cache: each test starts from none. The rates
    # stay the production defaults (tests/accounts/test_throttling.py relies on that).
    cache.clear()
    listing.forget_cached()  # the stored plan and queue order a read last saw: another database's
    ticker.forget_periodic()
    yield
    # A tick asked for by this test must not run into the next test's database.
    assert ticker.settle(timeout=60), "the ticker thread is still ticking"


def make_user(username: str, level: str = Level.RESEARCHER, team: Team | None = None, **extra):
    user = get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)
    Profile.objects.create(user=user, level=level, team=team)
    return user


@pytest.fixture
def team(db):
    return Team.objects.create(name="vision")


@pytest.fixture
def alice(db, team):
    return make_user("alice", team=team)


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def viewer(db):
    return make_user("victor", level=Level.VIEWER)


@pytest.fixture
def root(db):
    user = get_user_model().objects.create_superuser(username="root", password="pw-root", email="")
    Profile.objects.create(user=user, level=Level.ADMIN)
    return user


def api_for(user) -> APIClient:
    client = APIClient()
    client.default_format = "json"  # the API takes JSON only
    _, key = ApiToken.issue(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.fixture
def node(db):
    """The local node, with two simulated 24 GB GPUs."""
    return node_register(
        name="testnode",
        backend="declared",
        gpus=parse_declared("2x24GB", node_name="testnode"),
        labels={},
        boot_id="",
    )


@pytest.fixture
def quota_day_at_noon(db):
    """Set the quota time zone to one where it is now about noon, so that usage recorded "the last hour"
    lies in today's and this week's windows whatever hour the tests run at (CI once ran them at 00:04
    UTC, when 3,000 s of use ending now was 251 s of today)."""
    from datetime import UTC, datetime

    from scheduling.models import PolicyType
    from scheduling.policies import set_policy

    now = datetime.now(UTC)
    east = 12 - now.hour  # hours east of UTC where the local hour is 12: -11..12
    zone = "Etc/GMT" + (f"{-east:+d}" if east else "")  # POSIX signs: Etc/GMT-12 is UTC+12
    set_policy(PolicyType.QUOTA, enabled=True, config={"timezone": zone})
    return zone


def child_env(**extra) -> dict[str, str]:
    """Environment for a gpuq child process that must use this test's database, with this process's
    SECRET_KEY: processes of one gpuq must share it (django-q2 drops a task signed with another key), and a
    child given DATABASE_URL without one refuses to start."""
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{Path(db['NAME']).resolve()}"
    else:
        url = f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": settings.SECRET_KEY,
        **{k: str(v) for k, v in extra.items()},
    }
    env.pop("Q_CLUSTER_NAME", None)
    return env


# Deadlines are for failing, never for passing: a test waits for a condition, and the time it allows is
# what a quiet machine needs, stretched by this factor for a busy one (CI runs six shards on two cores,
# where starting a node can take ten times as long as alone). Raise it on slower machines.
PATIENCE = float(os.environ.get("GPUQ_TEST_PATIENCE", "4"))


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` × PATIENCE seconds."""
    timeout *= PATIENCE
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
