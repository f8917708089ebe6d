"""Every list page and list endpoint reads in a bounded number of queries, whatever the number of rows:
each is measured with a few rows and with many, under the same bound."""

import pytest
from django.test import Client
from guardian.shortcuts import assign_perm

from accounts.models import ApiToken, Level
from scheduling.models import JobTemplate, SchedulingPolicy
from scheduling.states import Status
from tests.conftest import api_for, make_user
from tests.factories import make_job

SIZES = (5, 60)


@pytest.fixture(params=SIZES, ids=lambda n: f"{n}-rows")
def crowd(request, alice, bob, team, node):
    """`n` jobs of each kind: alice's and her teammate's and bob's, waiting, held, running and finished;
    some of bob's shared with alice to act, some to view; `n` tokens and policies' worth of rows."""
    n = request.param
    mate = make_user("carol", team=team)
    lead = make_user("lena", level=Level.LEAD, team=team)
    template = JobTemplate.objects.create(name="hello", argv_template=["/bin/echo", "{m}"])
    statuses = [Status.PENDING, Status.BLOCKED, Status.SCHEDULED, Status.RUNNING, Status.COMPLETED]
    jobs = []
    for i in range(n):
        owner = (alice, mate, bob)[i % 3]
        status = statuses[i % len(statuses)]
        extra = {"node": node, "gpu_indices": [0]} if status == Status.RUNNING else {}
        jobs.append(
            make_job(
                owner,
                status=status,
                team=team if owner != bob else None,
                template=template if i % 2 else None,
                name=f"job-{i}",
                progress={"fraction": 0.5} if status == Status.RUNNING else {},
                **extra,
            )
        )
        jobs[-1].depends_on.set(jobs[max(0, i - 2) : i])
    for i, job in enumerate(j for j in jobs if j.owner == bob):
        assign_perm("act_on_job" if i % 2 else "view_job", alice, job)
    for i in range(n):
        ApiToken.issue(user=alice, name=f"t{i}")
    return {"n": n, "jobs": jobs, "lead": lead, "mate": mate}


def counted(django_assert_max_num_queries, bound: int, call):
    with django_assert_max_num_queries(bound):
        response = call()
    assert response.status_code == 200, response.content[:500]
    return response


def page_client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


PAGES = {
    # path: the bound, for a researcher, a lead and an admin alike
    "/": 34,
    "/?fragment=1": 34,
    "/me/": 14,
    "/me/?fragment=1": 14,
    "/gpus/": 8,
    "/analytics/": 12,
}


@pytest.mark.parametrize("path", PAGES)
@pytest.mark.parametrize("who", ["alice", "lead", "root"])
def test_a_list_page_makes_a_bounded_number_of_queries(
    crowd, path, who, root, alice, django_assert_max_num_queries
):
    client = page_client({"alice": alice, "lead": crowd["lead"], "root": root}[who])
    counted(django_assert_max_num_queries, PAGES[path], lambda: client.get(path))


API = {
    "/api/v1/jobs": 8,
    "/api/v1/jobs?status=pending,running&limit=500": 8,
    "/api/v1/queue": 22,
    "/api/v1/queue?status=pending&owner=bob": 22,
    "/api/v1/queue/me": 22,
    "/api/v1/queue/stats": 9,
    "/api/v1/nodes": 6,
    "/api/v1/system/status?include_allocation=true": 7,
    "/api/v1/templates": 5,
    "/api/v1/policies": 5,
    "/api/v1/tokens": 5,
}


@pytest.mark.parametrize("path", API)
@pytest.mark.parametrize("who", ["alice", "root"])
def test_a_list_endpoint_makes_a_bounded_number_of_queries(
    crowd, path, who, root, alice, django_assert_max_num_queries
):
    client = api_for({"alice": alice, "root": root}[who])
    SchedulingPolicy.objects.get_or_create(type="concurrency", defaults={"config": {"max_concurrent": 5}})
    counted(django_assert_max_num_queries, API[path], lambda: client.get(path))


def test_a_queue_position_makes_a_bounded_number_of_queries(crowd, alice, django_assert_max_num_queries):
    job = next(j for j in crowd["jobs"] if j.owner == alice and j.status == Status.PENDING)
    client = api_for(alice)
    counted(django_assert_max_num_queries, 24, lambda: client.get(f"/api/v1/queue/position/{job.pk}"))
