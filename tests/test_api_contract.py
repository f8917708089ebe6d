"""The API against its published schema: schemathesis sends generated requests (valid and invalid) to
every operation of a real running server (pytest-django's live_server), as an admin and as a researcher,
with all its checks; every answer must be no server error and match what the schema says."""

import logging

import httpx
import pytest
import schemathesis
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from accounts.models import ApiToken, Level, Profile
from scheduling.models import JobTemplate
from tests.conftest import make_user
from tests.factories import make_job

# Per operation and role, valid or invalid (a mix of both strategies); 64 operations make well over 100
# examples per role. Explicit and generated examples only: shrinking a failure would cost minutes, and the
# first failure is reported.
EXAMPLES_PER_OPERATION = 3
# All of schemathesis's checks. "A request the schema allows is accepted" (positive_data_acceptance) with
# schemathesis's own list of statuses that are not a refusal of the input (2xx, 3xx, 401, 403, 404, 409,
# 429, 5xx) and 422: input the schema allows but that names what does not exist or cannot be used (an
# unknown template, parameters its template refuses, a job no node could ever run;
# queueproject.refusals). A 400 is never expected here: it means the schema allowed what the API refuses.
CONFIG = SchemathesisConfig.from_dict(
    {
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
            }
        }
    }
)
SETTINGS = hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture
def people(transactional_db, settings):
    for rate in ("USER", "SUBMIT", "ANON", "AUTH_FAILURES"):
        setattr(settings, f"GPUQ_THROTTLE_{rate}", "100000/min")  # the point here is the schema
    root = get_user_model().objects.create_superuser(username="root", password="pw-root", email="")
    Profile.objects.create(user=root, level=Level.ADMIN)
    alice = make_user("alice")
    JobTemplate.objects.create(
        name="echo",
        argv_template=["echo", "{message}"],
        params_schema={"type": "object", "properties": {"message": {"type": "string"}}},
    )
    make_job(owner=alice)
    keys = {}
    for user in (root, alice):
        token, keys[user.username] = ApiToken.issue(user=user)
        # An id the generated DELETE /tokens/{id} will not hit: the run keeps its credentials.
        ApiToken.objects.filter(pk=token.pk).update(id=900_000_000 + token.pk)
    return keys


@pytest.mark.parametrize("role", ["root", "alice"])
def test_every_operation_answers_as_the_schema_says(live_server, people, role):
    headers = {"Authorization": f"Bearer {people[role]}"}
    raw = (
        httpx.get(f"{live_server.url}/api/v1/schema/?format=json", headers=headers, timeout=120)
        .raise_for_status()
        .json()
    )
    schema = schemathesis.openapi.from_dict(raw, config=CONFIG)
    checks = schema.config.checks_config_for()
    assert checks.status_code_conformance.enabled and checks.positive_data_acceptance.enabled
    failures, examples, seen = {}, 0, set()
    for result in schema.get_all_operations():
        operation = result.ok()

        @given(
            case=operation.as_strategy(GenerationMode.POSITIVE)
            | operation.as_strategy(GenerationMode.NEGATIVE)
        )
        @SETTINGS
        def check(case):
            nonlocal examples
            examples += 1
            response = case.call_and_validate(base_url=live_server.url, headers=headers)
            seen.add((case.operation.method.lower(), case.operation.path, str(response.status_code)))

        try:
            check()
        except (Exception, BaseExceptionGroup) as failure:  # one report per operation; go on
            failures[operation.label] = str(failure)[:3000]
    assert not failures, "\n\n".join(f"{label}:\n{text}" for label, text in failures.items())
    # Every status an operation answered is one the schema lists for that operation (as
    # status_code_conformance checks too), and the run saw refusals, not only successes.
    undocumented = {(m, p, code) for m, p, code in seen if code not in raw["paths"][p][m]["responses"]}
    assert not undocumented
    assert {code for *_, code in seen} >= {"200", "400", "404"}
    assert examples >= 100


def test_a_body_over_the_limit_is_a_json_413_logged_without_a_traceback(live_server, people, caplog):
    with caplog.at_level(logging.INFO):
        response = httpx.post(
            f"{live_server.url}/api/v1/jobs",
            content=b'{"argv": ["' + b"x" * 10_000_000 + b'"]}',
            headers={"Authorization": f"Bearer {people['root']}", "Content-Type": "application/json"},
            timeout=60,
        )
    assert response.status_code == 413
    assert "larger than" in response.json()["detail"]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
