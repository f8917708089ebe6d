"""SECRET_KEY: made once per install (0600) on the embedded default, agreed on by processes starting
together, required with DATABASE_URL, and refused when weak or gpuq's old public default."""

import os
import stat
import subprocess
import sys
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from queueproject.secret_key import OLD_PUBLIC_DEFAULT, read_or_create, secret_key_setting
from tests.conftest import wait_for

PRINT_KEY = "import django; django.setup(); from django.conf import settings; print(settings.SECRET_KEY)"
GOOD_KEY = "a-good-key-for-these-tests-only-0123456789-abcdefghijklmnopqrstuvwxyz"


def gpuq_python(code: str, *args: str, data_dir, **env) -> subprocess.Popen:
    """`python -c CODE ARGS` with gpuq's settings and its own data folder; DATABASE_URL and SECRET_KEY only
    when given."""
    environment = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    environment.update(DJANGO_SETTINGS_MODULE="queueproject.settings", GPUQ_DATA_DIR=str(data_dir), **env)
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=settings.BASE_DIR,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out.strip(), err


def test_it_makes_the_install_key_once_readable_by_the_server_only(tmp_path):
    code, first, err = finish(gpuq_python(PRINT_KEY, data_dir=tmp_path))
    assert code == 0, err
    key_file = tmp_path / "secret-key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first and len(first) >= 50 and first != OLD_PUBLIC_DEFAULT

    code, again, err = finish(gpuq_python(PRINT_KEY, data_dir=tmp_path))
    assert code == 0, err
    assert again == first  # kept: sessions and queued tasks outlive a restart
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".secret-key")] == []


def test_processes_starting_together_agree_on_one_key(tmp_path):
    """Four processes load everything but the settings, wait at a start line, then read them at once."""
    go = tmp_path / "go"
    code = (
        "import os, sys, time, django, queueproject.env, queueproject.secret_key\n"
        "open(sys.argv[1], 'w').close()\n"
        "while not os.path.exists(sys.argv[2]): time.sleep(0.01)\n" + PRINT_KEY
    )
    ready = [tmp_path / f"ready-{n}" for n in range(4)]
    data = tmp_path / "data"
    processes = [gpuq_python(code, str(marker), str(go), data_dir=data) for marker in ready]
    wait_for(lambda: all(marker.exists() for marker in ready), timeout=120, message="all at the start line")
    go.touch()
    results = [finish(process) for process in processes]
    assert [code for code, _, _ in results] == [0] * 4, [err for _, _, err in results]
    assert {key for _, key, _ in results} == {(data / "secret-key").read_text().strip()}


def test_threads_racing_to_make_the_key_all_read_the_one_that_won(tmp_path):
    path = tmp_path / "secret-key"
    start = threading.Barrier(16)
    keys = []

    def make():
        start.wait()
        keys.append(read_or_create(path))

    threads = [threading.Thread(target=make) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 16 and set(keys) == {path.read_text().strip()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["secret-key"]  # no temporary file left


def test_with_database_url_and_no_secret_key_it_refuses_to_start(tmp_path):
    process = gpuq_python(
        PRINT_KEY, data_dir=tmp_path, DATABASE_URL="postgres://gpuq@127.0.0.1:1/gpuq", SECRET_KEY=""
    )
    code, out, err = finish(process)
    assert code != 0 and out == ""
    assert "SECRET_KEY is not set" in err and "every machine of one gpuq must share it" in err
    assert "token_urlsafe" in err  # says how to make one
    assert not (tmp_path / "secret-key").exists()


def test_with_database_url_the_secret_key_from_the_environment_is_used(tmp_path):
    process = gpuq_python(
        PRINT_KEY, data_dir=tmp_path, DATABASE_URL="postgres://gpuq@127.0.0.1:1/gpuq", SECRET_KEY=GOOD_KEY
    )
    assert finish(process)[:2] == (0, GOOD_KEY)
    assert not (tmp_path / "secret-key").exists()


def test_the_old_public_default_is_refused_even_on_the_embedded_default(tmp_path):
    code, out, err = finish(gpuq_python(PRINT_KEY, data_dir=tmp_path, SECRET_KEY=OLD_PUBLIC_DEFAULT))
    assert code != 0 and out == ""
    assert "SECRET_KEY is gpuq's old public default" in err


@pytest.mark.parametrize(
    "value, reason",
    [
        (OLD_PUBLIC_DEFAULT, "old public default"),
        ("short-but-random-Xq81", "shorter than 50 characters"),
        ("abcd" * 20, "fewer than 5 distinct characters"),
        ("django-insecure-" + GOOD_KEY, "starts with django-insecure-"),
    ],
)
def test_a_weak_key_in_the_environment_is_refused(monkeypatch, tmp_path, value, reason):
    monkeypatch.setenv("SECRET_KEY", value)
    with pytest.raises(ImproperlyConfigured, match=f"^SECRET_KEY .*{reason}"):
        secret_key_setting(key_file=tmp_path / "secret-key")


def test_a_key_file_that_is_empty_or_weak_is_refused_not_used(monkeypatch, tmp_path):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    key_file = tmp_path / "secret-key"
    key_file.write_text("")
    with pytest.raises(ImproperlyConfigured, match=f"SECRET_KEY \\(from {key_file}\\) is shorter than 50"):
        secret_key_setting(key_file=key_file)
    assert key_file.read_text() == ""  # never replaced: other processes may be using it


def test_the_environment_wins_over_the_key_file(monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", GOOD_KEY)
    assert secret_key_setting(key_file=tmp_path / "secret-key") == GOOD_KEY
    assert not (tmp_path / "secret-key").exists()


def test_children_of_the_test_process_share_its_key():
    """child_env() hands this process's key to the nodes and web servers the tests start, whatever data
    folder they get: django-q2 drops a task signed with another key."""
    from tests.conftest import child_env

    assert child_env(GPUQ_DATA_DIR="/elsewhere")["SECRET_KEY"] == settings.SECRET_KEY
