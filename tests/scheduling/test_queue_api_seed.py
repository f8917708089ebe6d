"""Seed 001's shapes on the queue API: include_completed, the position in the submit response, cancel,
approve and reject under /queue/{id}/…; and a job's audit in its detail and paged on its own."""

from datetime import timedelta

import pytest
from django.utils import timezone

from scheduling import services
from scheduling.models import Job, JobAudit
from scheduling.states import Status
from tests.conftest import api_for
from tests.factories import make_job


def finished(owner, n: int, **fields) -> list[Job]:
    base = timezone.now() - timedelta(hours=1)
    return [
        make_job(owner, status=Status.COMPLETED, finished_at=base + timedelta(minutes=i), **fields)
        for i in range(n)
    ]


def test_the_queue_leaves_finished_jobs_out_unless_asked(alice, node):
    finished(alice, 2)
    body = api_for(alice).get("/api/v1/queue").json()
    assert body["completed"] == [] and body["completed_count"] is None


def test_include_completed_lists_finished_jobs_last_finished_first(alice, bob, node):
    old, new = finished(alice, 2)
    make_job(bob, status=Status.FAILED, finished_at=timezone.now() - timedelta(days=1))
    waiting = make_job(alice)
    body = api_for(alice).get("/api/v1/queue?include_completed=true").json()
    assert [j["id"] for j in body["completed"]][:2] == [new.pk, old.pk]
    assert body["completed_count"] == 3
    assert [j["id"] for j in body["pending"]] == [waiting.pk]
    # What everyone may see of a job: no argv, no environment.
    assert "argv" not in body["completed"][0] and body["completed"][0]["finished_at"]


def test_include_completed_honours_the_filters_and_the_window(alice, bob, node):
    finished(alice, 5)
    finished(bob, 2)
    client = api_for(alice)
    body = client.get("/api/v1/queue?include_completed=1&owner=alice&limit=2&offset=1").json()
    assert body["completed_count"] == 5 and len(body["completed"]) == 2
    assert {j["owner"] for j in body["completed"]} == {"alice"}
    only_running = client.get("/api/v1/queue?include_completed=true&status=running").json()
    assert only_running["completed"] == [] and only_running["completed_count"] == 0


def test_include_completed_without_a_limit_is_one_page(alice, node, settings):
    settings.GPUQ_PAGE_SIZE = 3
    finished(alice, 5)
    body = api_for(alice).get("/api/v1/queue?include_completed=true").json()
    assert len(body["completed"]) == 3 and body["completed_count"] == 5


def test_a_bad_include_completed_is_a_400_naming_it(alice, node):
    response = api_for(alice).get("/api/v1/queue?include_completed=maybe")
    assert response.status_code == 400 and "include_completed" in response.json()


def test_the_submit_response_says_the_queue_position(alice, root, node):
    # Both GPUs are taken by a running job, so what is submitted waits: first in line, then second.
    make_job(alice, status=Status.RUNNING, gpu_count=2, started_at=timezone.now())
    client = api_for(root)
    one = client.post("/api/v1/jobs", {"argv": ["/bin/true"], "priority": 5}, format="json").json()
    two = client.post("/api/v1/jobs", {"argv": ["/bin/true"], "priority": 5}, format="json").json()
    assert (one["status"], one["queue_position"]) == ("pending", 1)
    assert (two["status"], two["queue_position"]) == ("pending", 2)


def test_a_job_that_does_not_wait_in_line_has_no_position(root, node):
    later = (timezone.now() + timedelta(days=1)).isoformat()
    body = api_for(root).post("/api/v1/jobs", {"argv": ["/bin/true"], "start_after": later}, format="json")
    assert body.status_code == 201 and body.json()["status"] == "scheduled"
    assert body.json()["queue_position"] is None


def test_cancel_is_reachable_under_the_seeds_path(alice, node):
    job = make_job(alice)
    response = api_for(alice).post(f"/api/v1/queue/{job.pk}/cancel", {}, format="json")
    assert response.status_code == 200 and response.json()["status"] == "cancelled"


def test_approve_and_reject_are_reachable_under_the_seeds_paths(alice, root, node):
    one = make_job(alice, status=Status.BLOCKED, wait_reason="approval")
    two = make_job(alice, status=Status.BLOCKED, wait_reason="approval")
    client = api_for(root)
    assert client.post(f"/api/v1/queue/{one.pk}/approve", {}, format="json").json()["status"] == "pending"
    # Seed 001 gives the reason in the query string.
    rejected = client.post(f"/api/v1/queue/{two.pk}/reject?reason=too%20big", {}, format="json")
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    assert Job.objects.get(pk=two.pk).transitions.last().reason == "too big"


def test_reject_under_the_seeds_path_still_needs_a_reason(alice, root, node):
    job = make_job(alice, status=Status.BLOCKED, wait_reason="approval")
    response = api_for(root).post(f"/api/v1/queue/{job.pk}/reject", {}, format="json")
    assert response.status_code == 400 and "reason" in response.json()


def test_the_seeds_paths_check_who_asks_like_the_originals(alice, bob, node):
    job = make_job(alice, status=Status.BLOCKED, wait_reason="approval")
    assert api_for(bob).post(f"/api/v1/queue/{job.pk}/cancel", {}, format="json").status_code == 404
    assert api_for(alice).post(f"/api/v1/queue/{job.pk}/approve", {}, format="json").status_code == 403


def test_the_job_detail_carries_its_audit(alice, root, bob, node):
    job = make_job(alice)
    services.job_set_priority(job=job, user=root, priority=20, reason="deadline")
    services.job_move(job=Job.objects.get(pk=job.pk), user=root, reason="first")
    services.job_share(job=job, user=alice, with_user=bob, permission="view")
    body = api_for(alice).get(f"/api/v1/jobs/{job.pk}").json()
    assert [(a["action"], a["by"]) for a in body["audit"]] == [
        ("priority", "root"),
        ("move", "root"),
        ("share", "alice"),
    ]
    assert body["audit"][0]["detail"] == "10 → 20. deadline"
    assert body["audit_count"] == 3


def test_the_detail_carries_the_newest_audit_entries_and_the_audit_endpoint_pages_them_all(alice, node):
    job = make_job(alice)
    JobAudit.objects.bulk_create(
        JobAudit(job=job, by=alice, action="priority", detail=f"change {i}") for i in range(120)
    )
    client = api_for(alice)
    body = client.get(f"/api/v1/jobs/{job.pk}").json()
    assert body["audit_count"] == 120 and len(body["audit"]) == 100
    assert (body["audit"][0]["detail"], body["audit"][-1]["detail"]) == ("change 20", "change 119")
    page = client.get(f"/api/v1/jobs/{job.pk}/audit?limit=50&offset=100").json()
    assert page["count"] == 120 and [a["detail"] for a in page["results"]][:2] == ["change 100", "change 101"]
    assert len(page["results"]) == 20


def test_the_audit_is_seen_by_those_who_see_the_job(alice, bob, node):
    job = make_job(alice)
    assert api_for(bob).get(f"/api/v1/jobs/{job.pk}/audit").status_code == 404


@pytest.mark.parametrize("path", ["/api/v1/queue?include_completed=true", "/api/v1/jobs/{job}/audit"])
def test_the_new_reads_make_a_bounded_number_of_queries(alice, node, path, django_assert_max_num_queries):
    finished(alice, 30)
    job = make_job(alice)
    JobAudit.objects.bulk_create(JobAudit(job=job, by=alice, action="priority") for _ in range(30))
    client = api_for(alice)
    with django_assert_max_num_queries(24):
        assert client.get(path.format(job=job.pk)).status_code == 200
