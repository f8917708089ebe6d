"""Shared fixtures: named people (alice, bob, root the admin), a node with two simulated GPUs, API
clients, and the environment a child process needs to reach the test database."""

import os
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.test import APIClient

from accounts.models import ApiToken, Level, Profile, Team
from gpus.inventory import parse_declared
from gpus.services import node_register


@pytest.fixture(autouse=True)
def _isolated_data(settings, tmp_path):
    """Each test writes job logs and progress files under its own temporary folder, with short timings."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast; tests only
    settings.DATA_DIR = tmp_path
    settings.GPUQ_LOG_DIR = tmp_path / "logs"
    settings.GPUQ_CHECKPOINT_ROOT = tmp_path / "checkpoints"
    settings.GPUQ_KILL_GRACE_SECONDS = 2.0
    settings.GPUQ_HEARTBEAT_SECONDS = 0.2
    settings.GPUQ_CANCEL_POLL_SECONDS = 0.05
    settings.GPUQ_LEASE_SECONDS = 2.0


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


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    """Poll `predicate` until it returns a truthy value; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")
