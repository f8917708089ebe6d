"""Run-as with the real executor and real child processes: which account a job runs as, what its folders
look like, and what it cannot read. The account switches need root (CI runs as root)."""

import json
import os
import pwd

from accounts.models import Profile
from scheduling import batching, executor, runas
from scheduling.models import Job
from scheduling.states import Status
from tests.factories import make_job
from tests.runas import ALICE, BOB, needs_root, probe_argv, probe_report
from tests.scheduling.helpers import PY, dispatch

NOBODY = pwd.getpwnam("nobody")


def run(job: Job) -> Job:
    job = dispatch(job)
    executor.run_job(job.pk, job.lease_token)
    job.refresh_from_db()
    return job


def log_of(job: Job) -> str:
    with open(job.log_path) as handle:
        return handle.read()


def set_unix_username(user, name: str) -> None:
    Profile.objects.filter(user=user).update(unix_username=name)


@needs_root
def test_user_mode_runs_a_job_as_its_owners_account_in_folders_of_its_own(
    alice, node, settings, unix_accounts
):
    settings.GPUQ_RUN_AS = "user"
    set_unix_username(alice, ALICE)
    account = unix_accounts[ALICE]
    job = run(make_job(alice, argv=probe_argv(PY)))
    assert job.status == Status.COMPLETED, log_of(job)
    seen = probe_report(log_of(job))
    assert (seen["uid"], seen["euid"], seen["gid"]) == (account.pw_uid, account.pw_uid, account.pw_gid)
    assert 0 not in seen["groups"]  # root's groups are gone too
    assert seen["env"] == {"HOME": account.pw_dir, "USER": ALICE, "LOGNAME": ALICE}
    assert seen["cwd"] == seen["checkpoints"] == [account.pw_uid, "0o700"]
    # The log stays the server's: the job wrote it through the descriptor it was given.
    st = os.stat(job.log_path)
    assert (st.st_uid, oct(st.st_mode & 0o777)) == (0, "0o600")


@needs_root
def test_user_mode_a_job_cannot_read_another_users_job_folder_nor_any_log(
    alice, bob, node, settings, unix_accounts
):
    settings.GPUQ_RUN_AS = "user"
    set_unix_username(alice, ALICE)
    set_unix_username(bob, BOB)
    bobs = run(make_job(bob, argv=probe_argv(PY)))
    assert bobs.status == Status.COMPLETED, log_of(bobs)
    bobs_folder = executor.job_dir(bobs.pk)
    alices = run(
        make_job(
            alice,
            argv=probe_argv(
                PY,
                files={"bobs_log": bobs.log_path, "bobs_file": bobs_folder / "mine.txt"},
                folders={
                    "bobs_folder": bobs_folder,
                    "bobs_checkpoints": executor.checkpoint_dir(bobs.pk),
                    "logs": settings.GPUQ_LOG_DIR,
                    "jobs": settings.GPUQ_JOBS_DIR,
                },
            ),
        )
    )
    seen = probe_report(log_of(alices))
    assert seen["files"] == {"bobs_log": "denied", "bobs_file": "denied"}
    assert seen["folders"] == dict.fromkeys(["bobs_folder", "bobs_checkpoints", "logs", "jobs"], "denied")
    assert set(seen["environs"].values()) == {"denied"}, seen["environs"]  # not even its executor's


@needs_root
def test_account_mode_runs_every_job_as_the_named_account(alice, node, settings, unix_accounts):
    settings.GPUQ_RUN_AS = "account"
    settings.GPUQ_RUN_AS_ACCOUNT = BOB
    seen = probe_report(log_of(run(make_job(alice, argv=probe_argv(PY)))))
    assert seen["uid"] == unix_accounts[BOB].pw_uid
    assert seen["cwd"] == [unix_accounts[BOB].pw_uid, "0o700"]


@needs_root
def test_auto_mode_on_a_root_node_runs_jobs_as_nobody_who_cannot_read_the_servers_files(
    alice, node, settings
):
    assert settings.GPUQ_RUN_AS == "auto"
    secrets = {}
    for name in ("admin-token", "admin-password", "secret-key"):
        path = settings.DATA_DIR / name
        path.write_text("a secret\n")
        path.chmod(0o600)
        secrets[name] = path
    first = run(make_job(alice, argv=["echo", "first job"]))
    job = run(make_job(alice, argv=probe_argv(PY, files={**secrets, "other_log": first.log_path})))
    seen = probe_report(log_of(job))
    assert (seen["uid"], seen["gid"]) == (NOBODY.pw_uid, NOBODY.pw_gid)
    assert seen["cwd"] == seen["checkpoints"] == [NOBODY.pw_uid, "0o700"]
    assert seen["files"] == dict.fromkeys([*secrets, "other_log"], "denied")
    assert set(seen["environs"].values()) == {"denied"}


def test_user_mode_without_a_unix_username_fails_the_job_with_the_reason(alice, node, settings):
    settings.GPUQ_RUN_AS = "user"
    job = run(make_job(alice, argv=["true"]))
    assert job.status == Status.FAILED
    assert job.error == "run-as: user alice has no Unix account set (admin: Users → unix username)"
    assert job.attempt == 1 and job.transitions.last().reason == "run-as"  # failed, not retried
    assert job.error in log_of(job)


def test_user_mode_with_an_unknown_unix_account_fails_the_job_with_the_reason(alice, node, settings):
    settings.GPUQ_RUN_AS = "user"
    set_unix_username(alice, "gpuqt-nosuch")
    job = run(make_job(alice, argv=["true"]))
    assert job.status == Status.FAILED
    assert job.error == "run-as: user alice's Unix account 'gpuqt-nosuch' does not exist on this node"


@needs_root
def test_a_job_never_runs_as_root_unless_the_unsafe_setting_is_on(alice, node, settings):
    settings.GPUQ_RUN_AS = "account"
    settings.GPUQ_RUN_AS_ACCOUNT = "root"
    refused = run(make_job(alice, argv=probe_argv(PY)))
    assert refused.status == Status.FAILED
    assert refused.error.startswith("run-as: refusing to run a job as root (uid 0) (root)")
    assert "PROBE" not in log_of(refused)

    settings.GPUQ_RUN_JOBS_AS_ROOT_UNSAFE = True
    allowed = run(make_job(alice, argv=probe_argv(PY)))
    assert allowed.status == Status.COMPLETED, log_of(allowed)
    assert probe_report(log_of(allowed))["uid"] == 0


@needs_root
def test_a_job_whose_folders_its_account_cannot_reach_fails_with_a_clear_reason(
    alice, node, settings, tmp_path
):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    closed.chmod(0o700)
    settings.DATA_DIR = closed / "data"
    settings.GPUQ_JOBS_DIR = closed / "data" / "jobs"
    settings.GPUQ_LOG_DIR = closed / "data" / "logs"
    job = run(make_job(alice, argv=["true"]))
    assert job.status == Status.FAILED
    assert job.error.startswith(
        f"run-as: jobs run as nobody (uid {NOBODY.pw_uid}), who cannot reach {closed / 'data' / 'jobs'}: "
        f"{closed} is mode 0700 (root:root)"
    )


def test_the_server_never_reads_through_a_link_the_job_planted(alice, node, settings, tmp_path):
    # A job links its progress file to a file only the server may read: the server must not store it.
    secret = tmp_path / "server-only.json"
    secret.write_text(json.dumps({"secret": "s3cret"}))
    secret.chmod(0o600)
    code = f"import os; os.symlink({str(secret)!r}, 'progress.json')"
    job = run(make_job(alice, argv=[PY, "-c", code]))
    assert job.status == Status.COMPLETED, log_of(job)
    assert os.path.islink(executor.job_dir(job.pk) / "progress.json")
    assert job.progress in (None, {})


def test_a_batch_manifest_replaces_a_planted_link_instead_of_writing_through_it(alice, tmp_path):
    target = tmp_path / "victim"
    target.write_text("untouched")
    manifest = tmp_path / "batch.json"
    manifest.symlink_to(target)
    job = make_job(alice)
    batching.write_manifest(job, [job], lambda pk: tmp_path / str(pk), manifest)
    assert target.read_text() == "untouched"
    assert not manifest.is_symlink() and json.loads(manifest.read_text())["batch"] == job.pk


def test_a_node_that_is_not_root_fails_a_job_it_should_run_as_another_account(
    alice, node, settings, monkeypatch
):
    monkeypatch.setattr(runas.os, "geteuid", lambda: 4242)  # as a node started by an ordinary account
    settings.GPUQ_RUN_AS = "account"
    job = run(make_job(alice, argv=["true"]))
    assert job.status == Status.FAILED
    assert job.error.startswith(
        f"run-as: this node runs as 4242 (uid 4242), not root, so it cannot run jobs as nobody (uid {NOBODY.pw_uid})"
    )


def test_a_node_that_is_not_root_says_its_jobs_share_its_account(settings, monkeypatch):
    monkeypatch.setattr(runas.os, "geteuid", lambda: 4242)
    assert runas.describe() == (
        "jobs run as this node's own account 4242 (uid 4242) (not root, shared account): "
        "anyone who can submit can read this account's files"
    )
