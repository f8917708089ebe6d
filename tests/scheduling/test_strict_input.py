"""Strict API input (issue 12): unknown fields, exact types, bounded sizes, errors that name their field,
JSON errors under /api/, and no server error from odd input."""

import json

import pytest
from django.contrib.auth.models import Permission

from scheduling.models import Job, JobTemplate
from tests.conftest import api_for
from tests.factories import make_job

BIG = 2**63


@pytest.fixture
def hello(db):
    return JobTemplate.objects.create(
        name="hello",
        argv_template=["/bin/echo", "{word}"],
        params_schema={"type": "object", "properties": {"word": {"type": "string"}}},
    )


def submit(user, **body):
    return api_for(user).post("/api/v1/jobs", body, format="json")


def test_it_refuses_an_unknown_field_naming_it(root, node):
    response = submit(root, argv=["sleep", "1"], gpu_cout=2)
    assert response.status_code == 400
    assert "unknown field" in response.json()["gpu_cout"][0]
    assert not Job.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"argv": [1, 2]}, "argv"),
        ({"argv": ["sleep"], "env": {"A": 1}}, "env"),
        ({"argv": ["sleep"], "gpu_count": "2"}, "gpu_count"),
        ({"argv": ["sleep"], "gpu_count": True}, "gpu_count"),
        ({"argv": ["sleep"], "preemptible": "yes"}, "preemptible"),
        ({"argv": ["sleep"], "name": 5}, "name"),
    ],
)
def test_it_does_not_coerce_types(root, node, body, field):
    response = submit(root, **body)
    assert response.status_code == 400
    assert field in response.json()


@pytest.mark.parametrize(
    ("body", "field", "bound"),
    [
        ({"argv": ["x" * 1_000_000]}, "argv", "32768"),
        ({"argv": ["x" * 30_000] * 10}, "argv", "262144"),
        ({"argv": ["sleep"], "name": "n" * 201}, "name", "200"),
        ({"argv": ["sleep"], "env": {"A": "v" * 40_000}}, "env", "4096"),
        ({"template": "hello", "params": {"word": "w" * 70_000}}, "params", "65536"),
    ],
)
def test_sizes_are_bounded_with_the_bound_in_the_message(root, node, hello, body, field, bound):
    response = submit(root, **body)
    assert response.status_code == 400
    assert bound in json.dumps(response.json()[field])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"template": "hello", "params": {"word": "a\x00b"}}, "params"),
        ({"argv": ["sle\x00ep"]}, "argv"),
        ({"argv": ["sleep"], "env": {"A": "a\x00b"}}, "env"),
        ({"argv": ["sleep"], "name": "a\x00b"}, "name"),
    ],
)
def test_it_refuses_nul_characters(root, node, hello, body, field):
    response = submit(root, **body)
    assert response.status_code == 400
    assert "NUL" in json.dumps(response.json()[field])
    assert not Job.objects.exists()


def test_a_device_that_no_node_has_is_refused_under_device_ids(root, node):
    response = submit(root, argv=["sleep", "1"], device_ids=[7])
    assert response.status_code == 422
    assert list(response.json()) == ["device_ids"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"time_limit_seconds": BIG}, "time_limit_seconds"),
        ({"stall_timeout_seconds": BIG}, "stall_timeout_seconds"),
        ({"depends_on": [BIG]}, "depends_on"),
        ({"min_gpu_memory_mb": BIG}, "min_gpu_memory_mb"),
    ],
)
def test_huge_integers_are_a_400_naming_the_field(root, node, body, field):
    response = submit(root, argv=["sleep"], **body)
    assert response.status_code == 400
    assert field in response.json()


def test_huge_quotas_are_a_400(root, alice):
    response = api_for(root).put("/api/v1/admin/quotas", {"user": "alice", "daily_gpu_seconds": BIG})
    assert response.status_code == 400
    assert "daily_gpu_seconds" in response.json()


@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/queue?offset=²",
        "/api/v1/queue?limit=²",
        "/api/v1/jobs?limit=²",
        "/api/v1/jobs?offset=²",
        "/api/v1/jobs?offset=99999999999999999999999",
        "/api/v1/jobs/{job}/log?lines=²",
        "/api/v1/jobs/{job}/log?offset=²",
        "/api/v1/approvals?limit=²",
    ],
)
def test_unicode_digits_in_numbers_are_a_400(root, alice, url):
    job = make_job(owner=alice)
    response = api_for(root).get(url.format(job=job.pk))
    assert response.status_code == 400
    assert set(response.json()) & {"offset", "limit", "lines"}


@pytest.mark.parametrize("url", ["/api/v1/jobs/{job}/cancel", "/api/v1/queue/pause"])
def test_a_body_that_is_not_an_object_is_a_400(root, alice, url):
    job = make_job(owner=alice)
    response = api_for(root).post(url.format(job=job.pk), [1, 2], format="json")
    assert response.status_code == 400


def test_json_nested_too_deeply_is_a_400(root):
    body = "[" * 100_000 + "]" * 100_000
    response = api_for(root).post("/api/v1/jobs", body, content_type="application/json")
    assert response.status_code == 400
    assert "nested" in response.json()["detail"]


def test_a_reorder_with_nothing_to_do_is_a_400(root, alice):
    job = make_job(owner=alice)
    response = api_for(root).post("/api/v1/queue/reorder", {"job": job.pk})
    assert response.status_code == 400
    assert "nothing to do" in response.json()["priority"][0]


@pytest.mark.parametrize(
    ("method", "url", "status"),
    [("get", "/api/v1/jobs/abc", 404), ("get", "/api/v1/nowhere", 404), ("delete", "/api/v1/queue", 405)],
)
def test_errors_under_the_api_are_json(alice, method, url, status):
    response = getattr(api_for(alice), method)(url)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    assert "detail" in response.json()


def test_a_form_body_is_a_json_415(alice):
    response = api_for(alice).post(
        "/api/v1/jobs", "argv=sleep", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 415
    assert "detail" in response.json()


@pytest.mark.parametrize("field", ["time_limit_seconds", "priority"])
def test_out_of_range_numbers_on_the_submit_page_are_a_form_error(client, root, node, hello, field):
    client.force_login(root)
    # Past PostgreSQL's `integer` (a 500 there before), though within SQLite's.
    response = client.post("/submit/", {"template": "hello", field: str(2**31)})
    assert response.status_code == 400
    assert field in response.context["errors"]
    assert not Job.objects.exists()


def test_a_raw_argv_with_a_huge_element_is_refused_for_a_permitted_user(alice, node):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    assert submit(alice, argv=["x" * 100_000]).status_code == 400
