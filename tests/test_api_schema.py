"""The published OpenAPI schema (issue 12): errors, paging, real shapes, complete enums, token auth."""

import pytest

from scheduling.models import WaitReason
from scheduling.reasons import Reason
from tests.conftest import api_for


@pytest.fixture
def schema(alice):
    response = api_for(alice).get("/api/v1/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield f"{method.upper()} {path}", operation


def test_every_operation_declares_its_errors_in_one_shape(schema):
    assert "detail" in schema["components"]["schemas"]["Error"]["properties"]
    for label, operation in operations(schema):
        errors = [code for code in operation["responses"] if code.startswith(("4", "5"))]
        assert {"401", "403", "429"} <= set(errors), label
        for code in errors:
            content = operation["responses"][code]["content"]["application/json"]["schema"]
            assert content == {"$ref": "#/components/schemas/Error"}, (label, code)


def test_each_operation_declares_the_errors_it_can_answer_not_one_list_for_all(schema):
    def errors(label):
        method, path = label.split(" ", 1)
        return {c for c in schema["paths"][path][method.lower()]["responses"] if c.startswith("4")}

    assert "404" not in errors("GET /api/v1/me") and "400" not in errors("GET /api/v1/me")
    assert {"400", "409", "413", "415", "422"} <= errors("POST /api/v1/jobs")
    assert "404" not in errors("POST /api/v1/jobs") and "409" not in errors("GET /api/v1/jobs")
    assert {"404", "409"} <= errors("POST /api/v1/jobs/{job_id}/cancel")
    assert "413" not in errors("GET /api/v1/jobs/{job_id}") and "404" in errors("GET /api/v1/jobs/{job_id}")
    assert len({frozenset(errors(label)) for label, _ in operations(schema)}) > 5


def test_cross_field_rules_are_in_the_schema(schema):
    components = schema["components"]["schemas"]
    assert components["JobSubmitInRequest"]["oneOf"] == [{"required": ["template"]}, {"required": ["argv"]}]
    assert components["JobSubmitInRequest"]["additionalProperties"] is False
    assert components["QuotaInRequest"]["oneOf"] == [{"required": ["user"]}, {"required": ["team"]}]
    assert components["ReorderInRequest"]["not"] == {"required": ["before", "after"]}
    bulk = [v for v in components["JobSubmitOneOrManyRequest"]["oneOf"] if v.get("type") == "array"]
    assert bulk[0]["minItems"] == 1
    by_type = {v["properties"]["type"]["enum"][0]: v for v in components["PolicyRequest"]["oneOf"]}
    assert by_type["expiry"]["required"] == ["type", "config"]


def test_the_jobs_list_is_declared_paginated_with_its_filters(schema):
    operation = schema["paths"]["/api/v1/jobs"]["get"]
    ok = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][ok]["properties"]) == {"count", "next", "previous", "results"}
    assert {"limit", "offset", "status", "owner", "reason"} <= {p["name"] for p in operation["parameters"]}


@pytest.mark.parametrize(
    ("name", "keys"),
    [
        ("QueueStatsOut", {"queue_depth", "running", "avg_wait_seconds", "by_status", "queue_paused"}),
        ("QueueMeOut", {"pending_count", "running_count", "best_position", "pending_jobs"}),
        ("QuotaStatusOut", {"user", "team", "warning", "exceeded"}),
        ("ProcessedOut", {"started", "failed", "preempted"}),
        ("NodesOut", {"nodes"}),
        ("NodeOut", {"name", "status", "drained", "gpus"}),
        ("SystemStatusOut", {"nodes", "gpu_count", "gpu_allocation"}),
    ],
)
def test_the_summary_shapes_are_real(schema, name, keys):
    properties = schema["components"]["schemas"][name]["properties"]
    assert keys <= set(properties)
    assert all(p.get("type") or p.get("$ref") or p.get("allOf") for p in properties.values())


def test_the_wait_reason_enum_is_the_one_vocabulary(schema):
    declared = set(schema["components"]["schemas"]["WaitReasonEnum"]["enum"])
    assert {"retry", "batching", "batch", "begin_time", "approval", "expired"} <= declared
    # "" (not waiting) is declared apart, as the blank choice
    assert declared == {r.value for r in Reason} - {""} == set(WaitReason.values) - {""}


def test_token_authentication_is_declared(schema):
    assert schema["components"]["securitySchemes"]["tokenAuth"] == {"type": "http", "scheme": "bearer"}
    assert all({"tokenAuth": []} in op.get("security", []) for _, op in operations(schema))


def test_every_operation_named_for_its_state_errors_exists(schema):
    from queueproject.schema import STATE_STATUSES

    labels = {label for label, _ in operations(schema)}
    assert set(STATE_STATUSES) <= labels  # a renamed path would silently lose its 409/422
