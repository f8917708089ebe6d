"""Job templates managed through the API (issue 12: no step of the README needs the Django admin):
admins create, read, change and delete them with the admin form's checks; everyone else gets a 403."""

import pytest

from accounts.models import Level
from scheduling.models import Job, JobTemplate
from tests.conftest import api_for, make_user

TRAIN = {
    "name": "train",
    "argv_template": ["/bin/echo", "train", "--lr={lr}", "{steps}"],
    "params_schema": {
        "type": "object",
        "properties": {"lr": {"type": "number"}, "steps": {"type": "integer"}},
        "required": ["lr", "steps"],
        "additionalProperties": False,
    },
    "allowed_env": {"WANDB_PROJECT": "[a-z0-9-]{1,64}"},
    "default_time_limit_seconds": 60,
    "max_time_limit_seconds": 3600,
}


@pytest.fixture
def admin_api(root):
    return api_for(root)


def test_a_template_made_through_the_api_runs_its_argv_as_rendered(admin_api, alice, node):
    made = admin_api.post("/api/v1/templates", TRAIN)
    assert made.status_code == 201, made.json()
    assert made.json()["argv_template"] == TRAIN["argv_template"]
    assert made.json()["enabled"] is True

    submitted = api_for(alice).post(
        "/api/v1/jobs",
        {"template": "train", "params": {"lr": 0.5, "steps": 10}, "env": {"WANDB_PROJECT": "x-1"}},
    )
    assert submitted.status_code == 201, submitted.json()
    job = Job.objects.get(pk=submitted.json()["id"])
    assert job.argv == ["/bin/echo", "train", "--lr=0.5", "10"]
    assert job.template.name == "train"
    assert job.time_limit_seconds == 60


def test_a_bare_program_is_resolved_to_an_absolute_path_as_in_the_admin(admin_api):
    made = admin_api.post("/api/v1/templates", {"name": "hi", "argv_template": ["echo", "hi"]})
    assert made.status_code == 201, made.json()
    assert made.json()["argv_template"][0].startswith("/")
    assert JobTemplate.objects.get(name="hi").argv_template[0] == made.json()["argv_template"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "field", "code"),
    [
        # 422: well formed (the schema allows it) but unusable: the program, the placeholders, the
        # parameters' JSON schema, the environment rules, a default over the maximum, the batch argv.
        ({"argv_template": ["no-such-program-gpuq", "x"]}, "argv_template", 422),
        ({"argv_template": ["/bin/{prog}", "x"]}, "argv_template", 422),
        ({"argv_template": ["/bin/echo", "{lr:.2f}"]}, "argv_template", 422),
        ({"argv_template": ["/bin/echo", "{unknown}"]}, "argv_template", 422),
        ({"argv_template": []}, "argv_template", 400),
        ({"params_schema": {"type": "no-such-type"}}, "params_schema", 422),
        ({"params_schema": True}, "params_schema", 400),
        ({"allowed_env": {"LD_PRELOAD": ".*"}}, "allowed_env", 422),
        ({"allowed_env": {"GPUQ_JOB_ID": ".*"}}, "allowed_env", 422),
        ({"allowed_env": {"OK": "("}}, "allowed_env", 422),
        ({"default_time_limit_seconds": 7200}, "default_time_limit_seconds", 422),
        ({"default_gpu_count": -1}, "default_gpu_count", 400),
        ({"name": "not a slug"}, "name", 400),
        ({"batchable": True, "batch_argv_template": ["/bin/echo", "{lr}"]}, "batch_argv_template", 422),
        ({"colour": "red"}, "colour", 400),
        ({"argv_template": "/bin/echo hi"}, "argv_template", 400),
    ],
)
def test_a_bad_template_is_refused_naming_the_field(root, change, field, code):
    response = api_for(root).post("/api/v1/templates", {**TRAIN, **change})
    assert response.status_code == code, response.json()
    assert field in response.json(), response.json()
    assert not JobTemplate.objects.exists()


def test_a_taken_name_is_a_409_naming_it(admin_api):
    assert admin_api.post("/api/v1/templates", TRAIN).status_code == 201
    response = admin_api.post("/api/v1/templates", TRAIN)
    assert response.status_code == 409
    assert "name" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("level", [Level.RESEARCHER, Level.LEAD, Level.VIEWER])
def test_only_admins_manage_templates(level):
    JobTemplate.objects.create(name="hello", argv_template=["/bin/echo", "hi"])
    api = api_for(make_user("someone", level=level))
    assert api.post("/api/v1/templates", TRAIN).status_code == 403
    assert api.get("/api/v1/templates/hello").status_code == 403
    assert api.patch("/api/v1/templates/hello", {"enabled": False}).status_code == 403
    assert api.delete("/api/v1/templates/hello").status_code == 403
    assert api.get("/api/v1/templates").status_code == 200  # the list of enabled ones stays everyone's
    assert list(JobTemplate.objects.values_list("name", "enabled")) == [("hello", True)]


def test_patch_changes_the_given_fields_and_checks_the_whole(admin_api, alice, node):
    admin_api.post("/api/v1/templates", TRAIN)
    changed = admin_api.patch(
        "/api/v1/templates/train", {"argv_template": ["/bin/echo", "v2", "{lr}"], "description": "second"}
    )
    assert changed.status_code == 200, changed.json()
    assert changed.json()["description"] == "second"
    assert changed.json()["max_time_limit_seconds"] == 3600  # kept
    submitted = api_for(alice).post("/api/v1/jobs", {"template": "train", "params": {"lr": 1, "steps": 2}})
    assert Job.objects.get(pk=submitted.json()["id"]).argv == ["/bin/echo", "v2", "1"]

    # Checked against the stored fields too: a default above the stored maximum is refused.
    refused = admin_api.patch("/api/v1/templates/train", {"default_time_limit_seconds": 4000})
    assert refused.status_code == 422
    assert "default_time_limit_seconds" in refused.json()
    assert JobTemplate.objects.get(name="train").default_time_limit_seconds == 60

    disabled = admin_api.patch("/api/v1/templates/train", {"enabled": False})
    assert disabled.json()["enabled"] is False
    assert admin_api.get("/api/v1/templates").json()["results"] == []
    assert admin_api.get("/api/v1/templates/train").json()["enabled"] is False
    assert admin_api.patch("/api/v1/templates/nope", {"enabled": False}).status_code == 404


def test_delete_removes_an_unused_template_and_refuses_one_with_jobs(admin_api, alice, node):
    admin_api.post("/api/v1/templates", TRAIN)
    admin_api.post("/api/v1/templates", {"name": "spare", "argv_template": ["/bin/true"]})
    api_for(alice).post("/api/v1/jobs", {"template": "train", "params": {"lr": 1, "steps": 2}})

    refused = admin_api.delete("/api/v1/templates/train")
    assert refused.status_code == 409
    assert "enabled: false" in refused.json()["detail"]
    assert JobTemplate.objects.filter(name="train").exists()

    assert admin_api.delete("/api/v1/templates/spare").status_code == 204
    assert not JobTemplate.objects.filter(name="spare").exists()
    assert admin_api.delete("/api/v1/templates/spare").status_code == 404


def test_the_command_manages_templates_through_the_same_checks(db, tmp_path):
    import json

    from django.core.management import CommandError, call_command

    body = tmp_path / "train.json"
    body.write_text(json.dumps(TRAIN))
    call_command("gpuq_template", "create", str(body), stdout=open(tmp_path / "out", "w"))  # noqa: SIM115
    assert JobTemplate.objects.get(name="train").max_time_limit_seconds == 3600

    change = tmp_path / "change.json"
    change.write_text(json.dumps({"default_time_limit_seconds": 4000}))
    with pytest.raises(CommandError, match="default_time_limit_seconds"):
        call_command("gpuq_template", "update", "train", str(change))
    change.write_text(json.dumps({"allowed_env": {"PATH": ".*"}}))
    with pytest.raises(CommandError, match="allowed_env"):
        call_command("gpuq_template", "update", "train", str(change))
    change.write_text(json.dumps({"enabled": False}))
    call_command("gpuq_template", "update", "train", str(change), stdout=open(tmp_path / "out", "w"))  # noqa: SIM115
    assert JobTemplate.objects.get(name="train").enabled is False

    call_command("gpuq_template", "delete", "train", stdout=open(tmp_path / "out", "w"))  # noqa: SIM115
    assert not JobTemplate.objects.exists()
    with pytest.raises(CommandError, match="no template"):
        call_command("gpuq_template", "delete", "train")


def test_the_templates_list_is_paged_in_a_bounded_number_of_queries(alice, django_assert_max_num_queries):
    JobTemplate.objects.bulk_create(
        [JobTemplate(name=f"t{i:03}", argv_template=["/bin/true"]) for i in range(60)]
        + [JobTemplate(name="off", argv_template=["/bin/true"], enabled=False)]
    )
    api = api_for(alice)
    with django_assert_max_num_queries(5):
        first = api.get("/api/v1/templates").json()
    assert first["count"] == 60 and len(first["results"]) == 50 and first["previous"] is None
    assert first["results"][0]["name"] == "t000" and "offset=50" in first["next"]
    last = api.get(first["next"]).json()
    assert [t["name"] for t in last["results"]] == [f"t{i:03}" for i in range(50, 60)]
    assert last["next"] is None
    assert api.get("/api/v1/templates?limit=x").status_code == 400
