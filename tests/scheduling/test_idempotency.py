"""POST /api/v1/jobs with an Idempotency-Key: a retry returns the first job, another body is a 422, keys
are per user, bounded and forgotten after GPUQ_IDEMPOTENCY_HOURS, and concurrent retries make one job."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.utils import timezone

from scheduling.models import IdempotencyKey, Job
from tests.conftest import api_for

BODY = {"argv": ["true"], "name": "once"}


def submit(api, key, body=BODY):
    return api.post("/api/v1/jobs", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_it_returns_the_first_job_for_a_retry_with_the_same_key(root, node):
    api = api_for(root)
    first = submit(api, "k-1")
    assert first.status_code == 201
    again = submit(api, "k-1")
    assert again.status_code == 200 and again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Job.objects.count() == 1
    assert submit(api, "k-2").status_code == 201  # another key, another job
    assert api.post("/api/v1/jobs", BODY, format="json").status_code == 201  # no key: always a new job
    assert Job.objects.count() == 3


@pytest.mark.django_db
def test_it_refuses_the_same_key_with_another_body_naming_the_header(root, node):
    api = api_for(root)
    assert submit(api, "k-1").status_code == 201
    response = submit(api, "k-1", {**BODY, "name": "other"})
    assert response.status_code == 422
    assert "different request" in response.json()["Idempotency-Key"][0]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_per_user(root, alice, node):
    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    assert submit(api_for(root), "shared").status_code == 201
    assert submit(api_for(alice), "shared").status_code == 201
    assert Job.objects.count() == 2


@pytest.mark.django_db
def test_a_key_too_long_or_not_printable_is_a_400_naming_the_header(root, node):
    api = api_for(root)
    for bad in ("x" * 201, "tab\there", ""):
        response = submit(api, bad)
        assert response.status_code == 400, bad
        assert "Idempotency-Key" in response.json()
    assert Job.objects.count() == 0


@pytest.mark.django_db
def test_keys_are_forgotten_after_the_retention_period(root, node, settings):
    settings.GPUQ_IDEMPOTENCY_HOURS = 24
    api = api_for(root)
    first = submit(api, "old").json()["id"]
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=25))
    second = submit(api, "old")
    assert second.status_code == 201 and second.json()["id"] != first
    # The expired row was pruned; the key now names the new job only.
    assert list(IdempotencyKey.objects.values_list("job_id", flat=True)) == [second.json()["id"]]


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_submits_with_one_key_make_one_job(root, node):
    apis = [api_for(root) for _ in range(4)]
    start = threading.Barrier(len(apis))
    answers = []

    def race(api):
        start.wait()
        try:
            answers.append(submit(api, "race"))
        finally:
            connection.close()

    threads = [threading.Thread(target=race, args=(api,)) for api in apis]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 201], [a.content for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    assert Job.objects.count() == 1
