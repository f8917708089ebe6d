"""Lists that scale: the queue page, my jobs and the list APIs page, search, filter and sort in the
database, cap their page size, and answer compressed."""

import gzip
import re

import pytest
from django.test import Client

from accounts.models import Team
from scheduling.models import JobTemplate
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for
from tests.factories import make_job


@pytest.fixture
def small_pages(settings):
    settings.GPUQ_PAGE_SIZE = 5
    settings.GPUQ_MAX_PAGE_SIZE = 8


def browse(user, path: str) -> str:
    client = Client()
    client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200
    return response.content.decode()


def rows(html: str, table: str) -> list[int]:
    """The job ids of one table's rows, in order."""
    if f'id="{table}"' not in html:
        return []
    body = html.split(f'id="{table}"')[1].split("</table>")[0]
    return [int(i) for i in re.findall(r'<tr data-job="(\d+)"', body)]


def test_the_queue_page_shows_one_page_of_waiting_jobs_in_queue_order(alice, small_pages):
    jobs = [make_job(alice, name=f"w{i}", priority=i % 3) for i in range(12)]  # no node: all wait
    expected = [j.pk for j in sorted(jobs, key=lambda j: (-j.priority, j.queue_order, j.pk))]
    first = browse(alice, "/")
    assert rows(first, "pending") == expected[:5]
    assert "page 1 of 3 (12 jobs)" in first
    last = browse(alice, "/?page=3")
    assert rows(last, "pending") == expected[10:]
    assert re.search(r"<td>11</td>", last)  # positions count the whole queue, not the page
    assert rows(browse(alice, "/?page=99"), "pending") == expected[10:]  # past the end: the last page


def test_the_queue_page_searches_by_id_name_and_owner(alice, bob):
    mine = make_job(alice, name="resnet-sweep")
    theirs = make_job(bob, name="llama")
    assert rows(browse(alice, "/?q=resnet"), "pending") == [mine.pk]
    assert rows(browse(alice, f"/?q=%23{theirs.pk}"), "pending") == [theirs.pk]
    assert rows(browse(alice, "/?q=BOB"), "pending") == [theirs.pk]
    assert rows(browse(alice, "/?q=" + "9" * 30), "pending") == []  # not an id: no overflow, no match


def test_the_queue_page_filters_by_status_owner_team_reason_and_template(alice, bob, team):
    template = JobTemplate.objects.create(name="hello", argv_template=["/bin/echo", "hi"])
    other = Team.objects.create(name="nlp")
    a = make_job(alice, team=team, template=template, wait_reason="resources")
    b = make_job(bob, team=other, wait_reason="quota")
    held = make_job(bob, status=Status.BLOCKED, wait_reason="approval")
    assert rows(browse(alice, "/?owner=bob"), "pending") == [b.pk]
    assert rows(browse(alice, "/?owner=bob"), "held") == [held.pk]
    assert rows(browse(alice, "/?team=vision"), "pending") == [a.pk]
    assert rows(browse(alice, "/?reason=quota"), "pending") == [b.pk]
    assert rows(browse(alice, "/?template=hello"), "pending") == [a.pk]
    only_held = browse(alice, "/?status=blocked")
    assert rows(only_held, "pending") == [] and rows(only_held, "held") == [held.pk]
    assert 'value="blocked" selected' in only_held  # the form keeps the filter


def test_the_queue_page_sorts(alice):
    small = make_job(alice, gpu_count=1)
    big = make_job(alice, gpu_count=2)
    assert rows(browse(alice, "/"), "pending") == [small.pk, big.pk]
    assert rows(browse(alice, "/?sort=gpus"), "pending") == [big.pk, small.pk]
    assert rows(browse(alice, "/?sort=newest"), "pending") == [big.pk, small.pk]


def test_a_bad_filter_is_named_on_the_page_and_ignored(alice):
    job = make_job(alice)
    page = browse(alice, "/?status=nonsense&sort=sideways")
    assert "status: unknown status nonsense" in page
    assert rows(page, "pending") == [job.pk]


def test_the_pages_links_keep_the_filters(alice, small_pages):
    for i in range(7):
        make_job(alice, name=f"x{i}")
    page = browse(alice, "/?q=x&sort=oldest")
    assert 'href="?q=x&amp;sort=oldest&amp;page=2"' in page
    assert 'data-fragment="/?q=x&amp;sort=oldest&amp;fragment=1"' in page


def test_my_jobs_are_paged_with_running_ones_on_the_first_page(alice, node, small_pages):
    """The page used to show only the latest 100: a running job submitted before them went missing."""
    running = make_job(alice, name="long-run", argv=["sleep", "60"])
    tick()
    running.refresh_from_db()
    assert running.status == Status.DISPATCHED
    older = [make_job(alice, status=Status.COMPLETED, name=f"done{i}") for i in range(11)]
    first = browse(alice, "/me/")
    assert rows(first, "mine")[0] == running.pk
    assert rows(first, "mine")[1:] == [j.pk for j in reversed(older)][:4]
    assert "page 1 of 3 (12 jobs)" in first
    assert rows(browse(alice, "/me/?page=3"), "mine") == [older[1].pk, older[0].pk]
    assert rows(browse(alice, "/me/?status=completed&q=done1"), "mine") == [older[10].pk, older[1].pk]


def test_the_job_list_api_caps_the_page_size(alice, small_pages):
    for _ in range(10):
        make_job(alice)
    client = api_for(alice)
    body = client.get("/api/v1/jobs?limit=1000000000").json()
    assert body["count"] == 10 and len(body["results"]) == 8  # GPUQ_MAX_PAGE_SIZE
    assert len(client.get("/api/v1/jobs").json()["results"]) == 5  # GPUQ_PAGE_SIZE
    assert list(client.get("/api/v1/jobs?sort=up").json()) == ["sort"]


def test_the_job_list_api_filters_and_names_a_bad_filter(alice, bob):
    job = make_job(alice, name="needle", wait_reason="resources")
    make_job(alice, name="hay")
    client = api_for(alice)
    assert [j["id"] for j in client.get("/api/v1/jobs?q=needle").json()["results"]] == [job.pk]
    assert [j["id"] for j in client.get("/api/v1/jobs?reason=resources").json()["results"]] == [job.pk]
    response = client.get("/api/v1/jobs?reason=bored")
    assert response.status_code == 400 and "reason" in response.json()


def test_the_queue_api_pages_and_caps_the_pending_list(alice, small_pages):
    jobs = [make_job(alice) for _ in range(10)]
    client = api_for(alice)
    body = client.get("/api/v1/queue?limit=1000000000").json()
    assert len(body["pending"]) == 8 and body["pending_count"] == 10 and body["limit"] == 8
    second = client.get("/api/v1/queue?limit=4&offset=8").json()
    assert [e["id"] for e in second["pending"]] == [j.pk for j in jobs[8:]]
    assert [e["position"] for e in second["pending"]] == [9, 10]
    assert client.get("/api/v1/queue?limit=-1").json() == {"limit": ["a whole number from 0 to 8"]}
    assert client.get("/api/v1/queue?limit=0").json()["pending"] == []
    me = client.get("/api/v1/queue/me").json()
    assert me["pending_count"] == 10 and len(me["pending_jobs"]) == 8 and me["best_position"] == 1


def test_the_queue_api_filters_in_the_database(alice, bob, team):
    a = make_job(alice, team=team, name="alpha")
    make_job(bob, name="beta")
    client = api_for(bob)
    assert [e["id"] for e in client.get("/api/v1/queue?team=vision").json()["pending"]] == [a.pk]
    assert [e["id"] for e in client.get("/api/v1/queue?q=alpha").json()["pending"]] == [a.pk]
    assert client.get(f"/api/v1/queue/position/{a.pk}").status_code == 404  # bob may not read it
    assert api_for(alice).get(f"/api/v1/queue/position/{a.pk}").json()["position"] == 1


def test_the_api_and_the_pages_answer_compressed(alice):
    for i in range(30):
        make_job(alice, name=f"compressible-{i}")
    client = api_for(alice)
    response = client.get("/api/v1/queue", HTTP_ACCEPT_ENCODING="gzip")
    assert response["Content-Encoding"] == "gzip"
    assert b"compressible-29" in gzip.decompress(response.content)
    page = Client()
    page.force_login(alice)
    fragment = page.get("/?fragment=1", HTTP_ACCEPT_ENCODING="gzip")
    assert fragment["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in fragment["Vary"]


def test_what_shows_an_api_key_is_never_compressed(alice):
    """BREACH: a secret beside text the request chose (the token's name) stays uncompressed."""
    page = Client()
    page.force_login(alice)
    made = page.post("/tokens/", {"name": "x" * 90, "days": "1"}, HTTP_ACCEPT_ENCODING="gzip")
    assert made.status_code == 200 and "Content-Encoding" not in made
    api = api_for(alice).post(
        "/api/v1/tokens", {"name": "y" * 90}, format="json", HTTP_ACCEPT_ENCODING="gzip"
    )
    assert api.status_code == 201 and "Content-Encoding" not in api


def test_reads_reuse_the_last_plan_until_something_changes(
    alice, node, settings, django_assert_max_num_queries
):
    """Twenty open pages cost one planning per change: a read with no new event and no new job since the
    last plan reuses it; a change (an event, a new job) plans again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    settings.GPUQ_PLAN_REUSE_SECONDS = 3600
    first = make_job(alice, gpu_count=2, name="first")
    client = api_for(alice)

    def positions():
        with CaptureQueriesContext(connection) as queries:
            body = client.get("/api/v1/queue").json()
        return [(e["id"], e["position"]) for e in body["pending"]], len(queries)

    planned, planning = positions()
    assert planned == [(first.pk, 1)]
    reused, reading = positions()
    assert reused == planned and reading < planning - 3  # no snapshot read this time
    second = make_job(alice, gpu_count=2, priority=20, name="second")  # a new job: plan again
    assert positions()[0] == [(second.pk, 1), (first.pk, 2)]
    tick()  # starts `second` (an event): plan again
    assert positions()[0] == [(first.pk, 1)]
