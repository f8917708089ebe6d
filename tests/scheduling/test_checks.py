"""The run-as system checks: bad values are errors; `check --deploy` warns when jobs would run as the
server's own account, or may run as root."""

import os
import subprocess
import sys

import pytest
from django.conf import settings as django_settings

from scheduling import checks, runas


def ids(found) -> list[str]:
    return [message.id for message in found]


def test_a_run_as_mode_that_does_not_exist_is_an_error(settings):
    settings.GPUQ_RUN_AS = "nobody"
    assert ids(checks.check_run_as_settings()) == ["gpuq.E030"]
    assert checks.check_run_as_deploy() == []  # said once


def test_an_account_that_does_not_exist_on_this_machine_is_an_error(settings):
    settings.GPUQ_RUN_AS = "account"
    settings.GPUQ_RUN_AS_ACCOUNT = "gpuqt-nosuch"
    assert "gpuq.E031" in ids(checks.check_run_as_deploy())


def test_jobs_that_share_the_servers_account_are_a_deploy_warning(settings, monkeypatch):
    # A node that is not root cannot switch accounts: its jobs can read everything it can.
    monkeypatch.setattr(runas.os, "geteuid", lambda: 4242)
    found = checks.check_run_as_deploy()
    assert ids(found) == ["gpuq.W030"]
    assert found[0].msg == (
        "jobs run as the server's account 4242: anyone who can submit can read the server's files "
        "(database, secrets)."
    )


def test_the_unsafe_root_setting_is_a_deploy_warning(settings):
    settings.GPUQ_RUN_JOBS_AS_ROOT_UNSAFE = True
    assert "gpuq.W031" in ids(checks.check_run_as_deploy())


@pytest.mark.skipif(os.geteuid() != 0, reason="a root node with the defaults (CI runs as root)")
def test_a_root_node_with_the_default_settings_passes_the_deploy_checks(settings):
    assert checks.check_run_as_settings() + checks.check_run_as_deploy() == []


def test_manage_py_check_deploy_shows_the_run_as_warnings_and_plain_check_does_not(tmp_path):
    env = {**os.environ, "GPUQ_DATA_DIR": str(tmp_path), "GPUQ_RUN_JOBS_AS_ROOT_UNSAFE": "true"}
    env.pop("DATABASE_URL", None)
    manage = [sys.executable, str(django_settings.BASE_DIR / "manage.py"), "check"]
    deploy = subprocess.run([*manage, "--deploy"], env=env, capture_output=True, text=True, timeout=120)
    plain = subprocess.run(manage, env=env, capture_output=True, text=True, timeout=120)
    assert "(gpuq.W031) GPUQ_RUN_JOBS_AS_ROOT_UNSAFE is on" in deploy.stdout + deploy.stderr
    assert "gpuq.W031" not in plain.stdout + plain.stderr and plain.returncode == 0
