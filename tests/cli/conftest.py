"""One real gpuq per test module for the command line's tests: a `gpuq_web` (Daphne) and a node with four
simulated GPUs on the test database, with people (root the admin, alice a researcher of team vision, bob)
and their tokens; the CLI runs as a subprocess (`python -m gpuq_cli`) with GPUQ_URL and GPUQ_TOKEN, through a
recording proxy that keeps every answer for the schema check."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command

from accounts.models import ApiToken, Level, Profile, Team
from scheduling.models import JobTemplate
from tests.conftest import JOB_PYTHON, child_env, make_user, traversable_dir, wait_for
from tests.e2e.conftest import free_port, start_web, stop, wait_serving
from tests.recorder import Recorder

__all__ = ["start_web"]  # a fixture of tests/e2e, for a second server with other settings

# The template the tests submit: prints its message, then exits with its code.
ECHO = [JOB_PYTHON, "-c", "import sys; print(sys.argv[1], flush=True); sys.exit(int(sys.argv[2]))"]


@dataclass
class Gpuq:
    base: str
    tokens: dict[str, str]
    home: Path
    processes: list = field(default_factory=list)
    recorder: Recorder | None = None  # every answer the CLI got (tests/test_cli.py checks them last)

    def env(self, user: str | None = "alice", **extra) -> dict[str, str]:
        """The CLI's environment: no config of the machine's own (HOME is a folder of ours)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPUQ_") and k != "XDG_CONFIG_HOME"}
        env["HOME"] = str(self.home)
        if user:
            env.update(GPUQ_URL=self.base, GPUQ_TOKEN=self.tokens[user])
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run(self, *args, user: str | None = "alice", input: str | None = None, **extra):
        """Run `gpuq ARGS` to its end; returns the CompletedProcess (returncode, stdout, stderr)."""
        return subprocess.run(
            [sys.executable, "-m", "gpuq_cli", *map(str, args)],
            cwd=settings.BASE_DIR,
            env=self.env(user, **extra),
            input=input,
            capture_output=True,
            text=True,
            timeout=180,  # a safety net against a hung test, not a measurement
        )

    def ok(self, *args, **kwargs) -> str:
        done = self.run(*args, **kwargs)
        assert done.returncode == 0, (args, done.returncode, done.stdout, done.stderr)
        return done.stdout

    def json(self, *args, **kwargs):
        return json.loads(self.ok(*args, "--format", "json", **kwargs))

    def popen(self, *args, user: str = "alice") -> subprocess.Popen:
        process = subprocess.Popen(
            [sys.executable, "-m", "gpuq_cli", *map(str, args)],
            cwd=settings.BASE_DIR,
            env=self.env(user),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        self.processes.append(process)
        return process


@pytest.fixture(autouse=True)
def _django_db_marker():
    """These tests reach the database only through the server's processes. They carry the `django_db`
    mark so that pytest-django makes the test database, but not its per-test wrapping, overridden here:
    a transaction around each test would hold SQLite's write lock that the server waits on, and a flush
    after each would delete the module's people and node under the running processes."""


@pytest.fixture(scope="module")
def gpuq(django_db_setup, django_db_blocker):
    data = traversable_dir("gpuq-cli")
    with django_db_blocker.unblock():
        vision = Team.objects.create(name="vision")
        root = get_user_model().objects.create_superuser(username="root", password="pw-root", email="")
        Profile.objects.create(user=root, level=Level.ADMIN)
        people = [root, make_user("alice", team=vision), make_user("bob")]
        tokens = {user.username: ApiToken.issue(user=user)[1] for user in people}
        JobTemplate.objects.create(
            name="echo",
            argv_template=[*ECHO, "{message}", "{code}"],
            allowed_env={"WANDB_PROJECT": "[a-z-]{1,40}"},
            params_schema={
                "type": "object",
                "properties": {"message": {"type": "string"}, "code": {"type": "integer"}},
                "required": ["message", "code"],
            },
        )
    port = free_port()
    web = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_web", "--port", str(port)],
        env=child_env(GPUQ_DATA_DIR=data, GPUQ_LOG_LEVEL="WARNING"),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    node = subprocess.Popen(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_node"],
        env=child_env(
            GPUQ_NODE_NAME="cli-node",
            GPUQ_DECLARED_GPUS="4x24GB:NVIDIA L4",
            GPUQ_INVENTORY="declared",
            GPUQ_DATA_DIR=data,
            GPUQ_TICK_SECONDS=0.5,
            GPUQ_HEARTBEAT_SECONDS=0.3,
            GPUQ_LEASE_SECONDS=5,
            GPUQ_KILL_GRACE_SECONDS=2,
            GPUQ_Q_POLL_SECONDS=0.05,
        ),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    home = data / "home"
    home.mkdir()
    recorder = Recorder(f"http://127.0.0.1:{port}")
    server = Gpuq(base=recorder.url, tokens=tokens, home=home, recorder=recorder)
    try:
        wait_serving(server.base, timeout=60)
        wait_for(
            lambda: httpx.get(
                f"{server.base}/api/v1/nodes", headers={"Authorization": f"Token {tokens['root']}"}
            ).json()["nodes"],
            timeout=60,
            message="the node to register",
        )
        yield server
    finally:
        for process in [*server.processes, node, web]:
            stop(process)
        recorder.close()
        with django_db_blocker.unblock():
            call_command("flush", interactive=False, verbosity=0)
        shutil.rmtree(data, ignore_errors=True)
