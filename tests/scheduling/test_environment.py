"""The closed environment (issue 9): what a template-only user may put in a job's env and parameters, the
template's absolute program, NUL bytes; the attacks of the issue run for real through the executor."""

import importlib
import io
import json
import os
import shutil
import sys
from pathlib import Path

import pytest
from django.apps import apps
from django.contrib.auth.models import Permission
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.test import Client

from gpus.models import Allocation
from scheduling import environment, executor
from scheduling.environment import absolute_program, world_executable
from scheduling.models import Job, JobTemplate
from scheduling.states import Status
from scheduling.transitions import transition
from tests.conftest import api_for
from tests.factories import make_job
from tests.scheduling.helpers import PY, dispatch

ISSUE_NAMES = [
    "PATH",
    "LD_PRELOAD",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONWARNINGS",
    "BROWSER",
    "BASH_ENV",
    "NODE_OPTIONS",
    "PERL5OPT",
]


def submit(user, **body):
    return api_for(user).post("/api/v1/jobs", body, format="json")


def grant_raw(user):
    user.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))


def log_text(job):
    job.refresh_from_db()
    return Path(job.log_path).read_text()


@pytest.fixture
def hello(db, monkeypatch):
    """hello-gpu as a fresh install makes it (gpuq_bootstrap), with this interpreter's folder first on the
    server's PATH so that "python3" resolves to a real interpreter (not a shell-script shim)."""
    monkeypatch.setenv("PATH", f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    call_command("gpuq_bootstrap", stdout=io.StringIO())
    return JobTemplate.objects.get(name="hello-gpu")


@pytest.fixture
def fake_bin(tmp_path):
    """A folder holding a fake `python3` that leaves a marker file when it runs."""
    folder = tmp_path / "evil-bin"
    folder.mkdir()
    marker = tmp_path / "fake-ran"
    fake = folder / "python3"
    fake.write_text(f"#!/bin/sh\necho pwned > {marker}\n")
    fake.chmod(0o755)
    return folder, marker


@pytest.fixture
def tuned(db):
    """A template that allows two environment names, and prints its environment as JSON."""
    template = JobTemplate(
        name="tuned",
        argv_template=[PY, "-c", "import json, os, sys; print(json.dumps(dict(os.environ)))", "{run}"],
        params_schema={"type": "object", "properties": {"run": {"type": "string"}}, "required": ["run"]},
        allowed_env={"WANDB_PROJECT": "[a-z0-9-]{1,64}", "NCCL_DEBUG": "INFO|WARN"},
    )
    template.full_clean()
    template.save()
    return template


@pytest.fixture
def flags(db):
    """Placeholders that start argv elements (`{script}`, `{extra}`) and one inside an element (`--lr={lr}`)."""
    template = JobTemplate(
        name="flags",
        argv_template=["echo", "{script}", "--lr={lr}", "{extra}", "{scale}"],
        params_schema={
            "type": "object",
            "properties": {
                "script": {"type": "string"},
                "lr": {"type": "string"},
                "extra": {"type": "string", environment.ALLOW_DASH: True},
                "scale": {"type": "number"},
            },
            "required": ["script", "lr", "extra", "scale"],
        },
    )
    template.full_clean()
    template.save()
    return template


# --- the attack of the issue ---------------------------------------------------------------------------


def test_bootstrap_makes_hello_gpu_with_an_absolute_program(hello):
    program = hello.argv_template[0]
    assert Path(program).is_absolute() and Path(program).name == "python3"
    assert world_executable(program)  # the job's account (nobody, when the node is root) may run it


def test_a_template_user_setting_path_to_a_fake_python_is_a_403_naming_env(alice, node, hello, fake_bin):
    folder, _ = fake_bin
    response = submit(alice, template="hello-gpu", params={"message": "hi"}, env={"PATH": str(folder)})
    assert response.status_code == 403  # only raw-command users may set it
    assert "PATH" in response.json()["env"][0]
    assert not Job.objects.exists()


def test_even_with_path_set_by_a_raw_user_the_fake_python_does_not_run(alice, node, hello, fake_bin):
    folder, marker = fake_bin
    grant_raw(alice)  # raw-command users may set PATH: they may run anything anyway
    response = submit(
        alice, template="hello-gpu", params={"message": "real python here"}, env={"PATH": str(folder)}
    )
    assert response.status_code == 201, response.json()
    job = Job.objects.get(pk=response.json()["id"])
    assert Path(job.argv[0]).is_absolute() and job.env["PATH"] == str(folder)
    job = dispatch(job)
    assert executor.run_job(job.pk, job.lease_token) == "completed"
    assert "real python here\n" in log_text(job) and "GPUs: 0\n" in log_text(job)
    assert not marker.exists()


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_each_name_of_the_issue_is_a_403_for_a_template_user(alice, node, tuned, name):
    response = submit(alice, template="tuned", params={"run": "a"}, env={name: "/tmp/x"})
    assert response.status_code == 403
    assert response.json()["env"][0].startswith(f"{name}: ")


@pytest.mark.parametrize("name", ISSUE_NAMES)
def test_a_dangerous_name_is_refused_even_if_a_template_row_lists_it(alice, node, tuned, name):
    # A row written around clean() (a script, an old database): the check at submit still holds.
    JobTemplate.objects.filter(pk=tuned.pk).update(allowed_env={name: ".*"})
    response = submit(alice, template="tuned", params={"run": "a"}, env={name: "/tmp/x"})
    assert response.status_code == 403
    assert "changes which program runs" in response.json()["env"][0]


@pytest.mark.parametrize("name", ["LD_PRELOAD", "PYTHONPATH", "PATH"])
def test_a_raw_command_user_may_still_set_them(alice, node, name):
    grant_raw(alice)
    response = submit(alice, argv=["true"], env={name: "/opt/lib/x.so"})
    assert response.status_code == 201, response.json()
    assert response.json()["env"][name] == "/opt/lib/x.so"


def test_a_raw_command_user_submitting_a_template_may_set_any_name(alice, node, tuned):
    grant_raw(alice)
    response = submit(alice, template="tuned", params={"run": "a"}, env={"LD_PRELOAD": "/opt/x.so"})
    assert response.status_code == 201, response.json()


def test_gpuq_names_stay_reserved_for_raw_users(root, node):
    response = submit(root, argv=["true"], env={"CUDA_VISIBLE_DEVICES": "1"})
    assert response.status_code == 422 and "set by gpuq" in response.json()["env"][0]


# --- allowed_env --------------------------------------------------------------------------------------


def test_an_allowed_name_with_a_matching_value_reaches_the_job(alice, node, tuned):
    env = {"WANDB_PROJECT": "vision-sweep", "NCCL_DEBUG": "WARN"}
    response = submit(alice, template="tuned", params={"run": "a"}, env=env)
    assert response.status_code == 201, response.json()
    job = dispatch(Job.objects.get(pk=response.json()["id"]))
    assert executor.run_job(job.pk, job.lease_token) == "completed"
    seen = json.loads(log_text(job).splitlines()[1])
    assert (seen["WANDB_PROJECT"], seen["NCCL_DEBUG"]) == ("vision-sweep", "WARN")


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"NCCL_DEBUG": "TRACE"}, "NCCL_DEBUG: the value must match INFO|WARN"),
        ({"NCCL_DEBUG": "INFO\nWARN"}, "NCCL_DEBUG: the value must match"),  # the whole value
        ({"WANDB_PROJECT": "Upper Case"}, "WANDB_PROJECT: the value must match"),
        ({"WANDB_PROJECT": 7}, "WANDB_PROJECT: the value must be a string"),
        ({"HF_TOKEN": "x"}, "HF_TOKEN: not allowed by this template (it allows: NCCL_DEBUG, WANDB_PROJECT)"),
    ],
)
def test_a_value_not_matching_or_a_name_not_declared_is_a_422(alice, node, tuned, env, says):
    from scheduling.services import job_submit

    # Through the service: the API's own field turns numbers into strings before we see them.
    with pytest.raises(ValidationError) as error:
        job_submit(user=alice, template=tuned, params={"run": "a"}, env=env)
    assert error.value.message_dict["env"][0].startswith(says)
    if not isinstance(next(iter(env.values())), int):
        response = submit(alice, template="tuned", params={"run": "a"}, env=env)
        assert response.status_code == 422 and response.json()["env"][0].startswith(says)


def test_a_template_without_allowed_env_lets_its_users_set_nothing(alice, node, hello):
    response = submit(alice, template="hello-gpu", params={"message": "hi"}, env={"WANDB_PROJECT": "x"})
    assert response.status_code == 422
    assert response.json()["env"][0] == "WANDB_PROJECT: not allowed by this template (it allows: none)"


@pytest.mark.parametrize("name", ["PATH", "LD_PRELOAD", "ld_preload", "PYTHONSTARTUP", "GIT_SSH_COMMAND"])
def test_a_template_allowing_a_dangerous_name_is_refused_on_save(db, name):
    template = JobTemplate(name="bad", argv_template=[PY, "-c", "pass"], allowed_env={name: ".*"})
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert error.value.message_dict["allowed_env"][0].startswith(f"{name}: changes which program runs")


@pytest.mark.parametrize("allowed", [{"NCCL_DEBUG": "(INFO"}, {"NCCL_DEBUG": 7}, ["NCCL_DEBUG"]])
def test_a_broken_allowed_env_row_refuses_rather_than_fails(alice, node, tuned, allowed):
    JobTemplate.objects.filter(pk=tuned.pk).update(allowed_env=allowed)
    response = submit(alice, template="tuned", params={"run": "a"}, env={"NCCL_DEBUG": "INFO"})
    assert response.status_code == 422 and response.json()["env"][0].startswith("NCCL_DEBUG: ")


def test_allowed_env_needs_valid_patterns(db):
    template = JobTemplate(name="bad", argv_template=[PY], allowed_env={"NCCL_DEBUG": "(INFO"})
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert error.value.message_dict["allowed_env"][0].startswith("NCCL_DEBUG: not a valid regex")


def test_the_admins_template_form_shows_allowed_env_and_refuses_ld_preload(root):
    client = Client()
    client.force_login(root)
    assert 'name="allowed_env"' in client.get("/admin/scheduling/jobtemplate/add/").content.decode()
    form = {
        "name": "from-admin",
        "argv_template": '["python3", "-c", "pass"]',
        "params_schema": "{}",
        "default_gpu_count": "1",
        "default_env": "{}",
        "allowed_env": '{"LD_PRELOAD": ".*"}',
        "enabled": "on",
        "batch_key_params": "[]",
        "batch_window_seconds": "30",
        "batch_max_size": "8",
        "batch_argv_template": "[]",
    }
    refused = client.post("/admin/scheduling/jobtemplate/add/", form)
    assert refused.status_code == 200 and "LD_PRELOAD: changes which program runs" in refused.content.decode()
    form["allowed_env"] = '{"NCCL_DEBUG": "INFO|WARN"}'
    assert client.post("/admin/scheduling/jobtemplate/add/", form).status_code == 302
    saved = JobTemplate.objects.get(name="from-admin")
    assert saved.argv_template[0] == absolute_program(
        "python3", field="argv_template"
    ) and saved.allowed_env == {"NCCL_DEBUG": "INFO|WARN"}


def test_the_templates_api_tells_users_what_they_may_set(alice, tuned):
    rows = api_for(alice).get("/api/v1/templates").json()
    rows = rows.get("results", rows) if isinstance(rows, dict) else rows
    assert [r["allowed_env"] for r in rows if r["name"] == "tuned"] == [tuned.allowed_env]


@pytest.mark.parametrize(
    ("env", "says", "code"),
    [
        ({f"V{i}": "x" for i in range(65)}, "at most 64 variables", 400),
        # a rule on a key, which OpenAPI 3.0 cannot state (queueproject.refusals.Unprocessable)
        ({"V" * 129: "x"}, "a name has at most 128 characters", 422),
        ({"V": "x" * 4097}, "at most 4096 characters", 400),
    ],
    ids=["65 variables", "129-character name", "4097-character value"],
)
def test_the_environment_is_bounded_for_everyone(root, node, env, says, code):
    response = submit(root, argv=["true"], env=env)
    assert response.status_code == code and says in json.dumps(response.json()["env"])


# --- the program --------------------------------------------------------------------------------------


def test_a_bare_program_is_resolved_on_save_and_a_missing_one_refused(db):
    template = JobTemplate(name="echoes", argv_template=["echo", "{text}"])
    template.full_clean()
    assert template.argv_template == [shutil.which("echo"), "{text}"]
    missing = JobTemplate(name="missing", argv_template=["no-such-program-gpuq", "x"])
    with pytest.raises(ValidationError) as error:
        missing.full_clean()
    assert error.value.message_dict["argv_template"] == [
        "no-such-program-gpuq: not found on the server; give an absolute path"
    ]


def test_a_bare_program_resolves_to_one_every_account_may_run(db, tmp_path, monkeypatch):
    """A program found first in a private folder (root's home, pyenv's shims) is passed over for one
    that the job's account can run, further down the PATH."""
    private, public = tmp_path / "private", tmp_path / "public"
    for folder, mode in ((private, 0o700), (public, 0o755)):
        folder.mkdir(mode=mode)
        folder.chmod(mode)
        program = folder / "gpuq-test-tool"
        program.write_text("#!/bin/sh\n")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{private}:{public}")
    template = JobTemplate(name="tool", argv_template=["gpuq-test-tool"])
    template.full_clean()
    assert template.argv_template == [str(public / "gpuq-test-tool")]
    monkeypatch.setenv("PATH", str(private))  # none that others may run: the first found still does
    template = JobTemplate(name="tool2", argv_template=["gpuq-test-tool"])
    template.full_clean()
    assert template.argv_template == [str(private / "gpuq-test-tool")]


def test_the_program_cannot_be_a_parameter(db):
    template = JobTemplate(name="any", argv_template=["{program}", "x"])
    with pytest.raises(ValidationError) as error:
        template.full_clean()
    assert "cannot hold a {placeholder}" in error.value.message_dict["argv_template"][0]


def test_a_batch_program_is_resolved_too(db):
    template = JobTemplate(
        name="batchy",
        argv_template=["echo", "{prompt}"],
        batchable=True,
        batch_argv_template=["echo", "{manifest}"],
    )
    template.full_clean()
    assert template.batch_argv_template[0] == shutil.which("echo")


def test_the_migration_resolves_existing_programs(db):
    old = JobTemplate.objects.create(name="old", argv_template=["echo", "{x}"], batch_argv_template=["true"])
    lost = JobTemplate.objects.create(name="lost", argv_template=["no-such-program-gpuq"])
    migration = importlib.import_module("scheduling.migrations.0008_template_allowed_env")
    migration.resolve_programs(apps, None)
    old.refresh_from_db()
    lost.refresh_from_db()
    assert old.argv_template[0] == shutil.which("echo") and old.batch_argv_template == [shutil.which("true")]
    assert lost.argv_template == ["no-such-program-gpuq"]


def test_a_template_saved_with_a_bare_program_is_resolved_at_submit_or_refused(alice, node):
    JobTemplate.objects.create(name="old", argv_template=["echo", "hi"])
    JobTemplate.objects.create(name="lost", argv_template=["no-such-program-gpuq"])
    response = submit(alice, template="old", params={})
    assert response.status_code == 201 and response.json()["argv"] == [shutil.which("echo"), "hi"]
    response = submit(alice, template="lost", params={})
    assert response.status_code == 400
    assert response.json()["template"] == [
        "lost: no-such-program-gpuq: not found on the server; give an absolute path (an admin must fix the template)"
    ]


def test_the_executor_refuses_a_template_job_whose_program_is_not_absolute(alice, node, tuned, fake_bin):
    folder, marker = fake_bin
    job = make_job(alice, template=tuned, argv=["python3", "-c", "print(1)"], env={"PATH": str(folder)})
    job = dispatch(job)
    assert executor.run_job(job.pk, job.lease_token) == "failed"
    job.refresh_from_db()
    assert job.error == "could not start: the template's program 'python3' is not an absolute path"
    assert not marker.exists() and not Allocation.objects.active().exists()


# --- parameters ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["--evil=x", "-x", "-"])
def test_a_parameter_starting_an_element_with_a_dash_is_a_400(alice, node, flags, value):
    params = {"script": value, "lr": "0.1", "extra": "", "scale": 1}
    response = submit(alice, template="flags", params=params)
    assert response.status_code == 400
    assert response.json()["params"][0].startswith("script: must not start with '-'")


def test_an_empty_parameter_lets_the_next_one_start_the_element(db, alice, node):
    template = JobTemplate(
        name="joined",
        argv_template=["echo", "{a}{b}"],
        params_schema={"properties": {"a": {"type": "string"}, "b": {"type": "string"}}},
    )
    template.full_clean()
    template.save()
    response = submit(alice, template="joined", params={"a": "", "b": "--evil"})
    assert response.status_code == 400 and response.json()["params"][0].startswith("b: must not start")
    assert submit(alice, template="joined", params={"a": "x", "b": "--fine"}).status_code == 201


def test_the_schema_keyword_allows_a_dash_and_inner_or_numeric_values_pass(alice, node, flags):
    params = {"script": "train.py", "lr": "-1", "extra": "--verbose", "scale": -0.5}
    response = submit(alice, template="flags", params=params)
    assert response.status_code == 201, response.json()
    assert response.json()["argv"] == [shutil.which("echo"), "train.py", "--lr=-1", "--verbose", "-0.5"]


def test_a_batch_key_parameter_cannot_inject_an_option_either(alice, node):
    template = JobTemplate(
        name="batched",
        argv_template=[PY, "-c", "pass", "--steps={steps}"],
        params_schema={"properties": {"steps": {"type": "string"}}},
        batchable=True,
        batch_key_params=["steps"],
        batch_argv_template=[PY, "-c", "pass", "{manifest}", "{steps}"],
    )
    template.full_clean()
    template.save()
    response = submit(alice, template="batched", params={"steps": "--evil"})
    assert response.status_code == 400 and response.json()["params"][0].startswith("steps: must not start")


# --- NUL bytes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field", "code"),
    [
        (
            {"template": "flags", "params": {"script": "a\x00b", "lr": "1", "extra": "", "scale": 1}},
            "params",
            400,
        ),
        ({"argv": ["echo", "a\x00b"]}, "argv", 400),
        ({"argv": ["echo"], "env": {"A": "a\x00b"}}, "env", 400),
        ({"argv": ["echo"], "env": {"A\x00B": "x"}}, "env", 422),  # a key: OpenAPI 3.0 cannot state it
        ({"argv": ["echo"], "name": "a\x00b"}, "name", 400),
    ],
    ids=["param", "argv", "env value", "env name", "name"],
)
def test_a_nul_byte_is_refused_naming_the_field(root, node, flags, body, field, code):
    response = submit(root, **body)
    assert response.status_code == code, response.content
    assert field in response.json()
    assert not Job.objects.exists()


def test_a_nul_byte_in_a_template_parameter_is_refused_by_the_service(alice, node, flags):
    from scheduling.services import job_submit

    with pytest.raises(ValidationError) as error:
        job_submit(user=alice, template=flags, params={"script": "a\x00", "lr": "1", "extra": "", "scale": 1})
    assert error.value.message_dict == {"params": ["must not contain a NUL byte (\\u0000)"]}


def test_an_argv_with_a_nul_byte_fails_its_attempt_and_frees_the_gpu(alice, node):
    # Cannot be submitted any more (above), nor stored on PostgreSQL; the executor still must not crash on
    # one and leave the GPU held, so hand it one in memory.
    job = dispatch(make_job(alice, argv=["true"]))
    transition(job, Status.RUNNING, token=job.lease_token, reason="executor started")
    job.argv = [PY, "-c", "print(1)", "a\x00b"]
    assert executor.Execution(job, job.lease_token).run() == "failed"
    job.refresh_from_db()
    assert job.status == Status.FAILED and "null byte" in job.error
    assert not Allocation.objects.active().exists()
