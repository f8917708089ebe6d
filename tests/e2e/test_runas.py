"""Run-as with real gpuq processes, as a root install runs them: the embedded default (`gpuq_serve`) runs
a submitted job as `nobody`, and that job cannot read the server's secrets, database, logs or memory."""

import hashlib
import os
import pwd
import shutil
import signal
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from scheduling import procs
from scheduling.models import Job
from scheduling.states import TERMINAL, Status
from tests.conftest import JOB_PYTHON, api_for, child_env, wait_for
from tests.e2e.conftest import free_port, output_lines, start_serve, wait_serving
from tests.runas import needs_root, probe_argv, probe_report

pytestmark = pytest.mark.processes


def mode(path: Path) -> str:
    return oct(os.stat(path).st_mode & 0o777)


def stop_serve(serve: subprocess.Popen) -> None:
    if serve.poll() is None:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            procs.signal_group(serve.pid, signal.SIGKILL)
            serve.wait()


def test_the_server_creates_its_database_logs_and_folders_for_its_own_account_only(tmp_path):
    data = tmp_path / "data"  # made by gpuq itself, as on a fresh install
    serve, base, _, token = start_serve(data, free_port(), GPUQ_NODE_NAME="modes-e2e")
    try:
        wait_serving(base, timeout=30)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=5)
        job = api.post("/api/v1/jobs", json={"argv": ["echo", "hello"]}).json()
        wait_for(
            lambda: api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed",
            timeout=30,
            message="the job to complete",
        )
        files = [
            "gpuq.sqlite3",
            "gpuq.sqlite3-wal",
            "admin-token",
            "admin-password",
            f"logs/job-{job['id']}.log",
        ]
        assert {name: mode(data / name) for name in files} == dict.fromkeys(files, "0o600")
        assert (mode(data), mode(data / "jobs"), mode(data / "checkpoints")) == ("0o711",) * 3
        assert mode(data / "logs") == "0o700"
    finally:
        stop_serve(serve)


@needs_root
def test_a_job_of_the_embedded_default_runs_as_nobody_and_cannot_read_the_servers_files(tmp_path):
    data = tmp_path / "data"  # made by gpuq itself, as on a fresh install
    serve, base, _, token = start_serve(
        data,
        free_port(),
        GPUQ_NODE_NAME="runas-e2e",
        SECRET_KEY="e2e-server-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz",
    )
    try:
        wait_serving(base, timeout=30)
        (data / "secret-key").write_text("e2e-server-secret-key-0123456789-abcdefghijklmnopqrstuvwxyz\n")
        (data / "secret-key").chmod(0o600)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=5)

        def finished(job_id):
            return wait_for(
                lambda: (lambda j: j["status"] in ("completed", "failed") and j)(
                    api.get(f"/api/v1/jobs/{job_id}").json()
                ),
                timeout=30,
                message=f"job {job_id} to finish",
            )

        first = finished(api.post("/api/v1/jobs", json={"argv": ["echo", "first"]}).json()["id"])
        files = {
            name: data / name
            for name in ("admin-token", "admin-password", "secret-key", "gpuq.sqlite3", "gpuq.sqlite3-wal")
        }
        files["other_log"] = data / "logs" / f"job-{first['id']}.log"
        folders = {"data": data, "logs": data / "logs", "jobs": data / "jobs"}
        argv = probe_argv(JOB_PYTHON, files=files, folders=folders)
        probe = finished(api.post("/api/v1/jobs", json={"argv": argv}).json()["id"])
        log = "\n".join(api.get(f"/api/v1/jobs/{probe['id']}/log?lines=1000").json()["lines"])
        assert probe["status"] == "completed", log
        seen = probe_report(log)
        nobody = pwd.getpwnam("nobody")
        assert (seen["uid"], seen["gid"]) == (nobody.pw_uid, nobody.pw_gid)
        assert seen["cwd"] == seen["checkpoints"] == [nobody.pw_uid, "0o700"]
        assert seen["files"] == dict.fromkeys(files, "denied")
        assert seen["folders"] == dict.fromkeys(folders, "denied")
        assert len(seen["environs"]) >= 3  # its executor, the cluster, the node, gpuq_serve, ...
        assert set(seen["environs"].values()) == {"denied"}, seen["environs"]
    finally:
        stop_serve(serve)


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_root_node_says_at_start_which_account_its_jobs_run_as(start_node):
    node = start_node("says")
    assert output_lines(node, 2)[1] == "node says: jobs run as nobody (uid 65534) (GPUQ_RUN_AS=auto)\n"


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_node_whose_job_folders_its_jobs_account_cannot_reach_refuses_to_start(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir()
    closed.chmod(0o700)
    node = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "gpuq_node"],
        env=child_env(
            GPUQ_NODE_NAME="closed",
            GPUQ_INVENTORY="declared",
            GPUQ_DATA_DIR=closed / "data",
            GPUQ_JOBS_DIR=closed / "jobs",
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert node.returncode != 0
    assert (
        f"node closed: run-as: jobs run as nobody (uid 65534), who cannot reach {closed}/jobs: "
        f"{closed} is mode 0700 (root:root)"
    ) in node.stderr


@needs_root
@pytest.mark.django_db(transaction=True)
def test_a_data_folder_others_cannot_pass_puts_job_folders_under_var_lib_gpuq(root, start_node, tmp_path):
    """A checkout in root's home (0700) must still run jobs: their folders go where they can reach them."""
    closed = tmp_path / "home"
    closed.mkdir()
    closed.chmod(0o700)
    start_node("homed", data_dir=closed / "data")
    job_id = (
        api_for(root)
        .post("/api/v1/jobs", {"argv": [JOB_PYTHON, "-c", "import os; print(os.getcwd())"]}, format="json")
        .json()["id"]
    )
    wait_for(lambda: Job.objects.get(pk=job_id).status in TERMINAL, timeout=30, message="the job to end")
    job = Job.objects.get(pk=job_id)
    assert job.status == Status.COMPLETED, job.error
    digest = hashlib.sha256(str((closed / "data").resolve()).encode()).hexdigest()[:12]
    assert Path(f"/var/lib/gpuq/{digest}/jobs/{job_id}").is_dir()
    assert stat.S_IMODE(Path("/var/lib/gpuq").stat().st_mode) == 0o711
    shutil.rmtree(f"/var/lib/gpuq/{digest}")
