"""Lists that scale: the queue page, my jobs and the list APIs page, search, filter and sort in the
database, cap their page size, and answer compressed."""

import gzip
import re
import time
from types import SimpleNamespace

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import Team
from scheduling.api.shapes import QueuePositionOut
from scheduling.models import JobTemplate
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for, make_user
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
    tick()  # stores the plan the page shows
    expected = [j.pk for j in sorted(jobs, key=lambda j: (-j.priority, j.queue_order, j.pk))]
    first = browse(alice, "/")
    assert rows(first, "pending") == expected[:5]
    assert "page 1 of 3 (12 jobs)" in first
    last = browse(alice, "/?page=3")
    assert rows(last, "pending") == expected[10:]
    assert re.search(r"<td>11</td>", last)  # positions count the whole queue, not the page
    assert rows(browse(alice, "/?page=99"), "pending") == expected[10:]  # past the end: the last page


def test_a_job_no_tick_has_planned_yet_shows_no_position_rather_than_none(alice):
    job = make_job(alice, name="fresh")  # no tick yet: no stored position
    html = browse(alice, "/")
    assert rows(html, "pending") == [job.pk]
    assert "<td>None</td>" not in html
    assert "<td>–</td>" in html


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


@pytest.mark.parametrize(
    "url",
    ["/api/v1/jobs?owner=a%00b", "/api/v1/queue?q=a%00b", "/api/v1/users?team=a%00b", "/api/v1/teams?q=%00"],
)
def test_a_nul_in_a_text_filter_is_a_400_naming_it(root, url):
    # PostgreSQL cannot compare text holding NUL: it was a 500 there, which the contract run found.
    response = api_for(root).get(url)
    field = url.split("?")[1].split("=")[0]
    assert response.status_code == 400 and field in response.json(), response.content


def test_the_queue_api_pages_and_caps_the_pending_list(alice, small_pages):
    jobs = [make_job(alice) for _ in range(10)]
    tick()
    client = api_for(alice)
    body = client.get("/api/v1/queue?limit=1000000000").json()
    assert len(body["pending"]) == 8 and body["pending_count"] == 10 and body["limit"] == 8
    second = client.get("/api/v1/queue?limit=4&offset=8").json()
    assert [e["id"] for e in second["pending"]] == [j.pk for j in jobs[8:]]
    assert [e["position"] for e in second["pending"]] == [9, 10]
    assert client.get("/api/v1/queue?limit=-1").json() == {
        "limit": ["a whole number from 0 to 1000000000000 (more than 8 is 8)"]
    }
    assert client.get("/api/v1/queue?limit=0").json()["pending"] == []
    me = client.get("/api/v1/queue/me").json()
    assert me["pending_count"] == 10 and len(me["pending_jobs"]) == 8 and me["best_position"] == 1


def test_the_queue_api_filters_in_the_database(alice, bob, team):
    a = make_job(alice, team=team, name="alpha")
    make_job(bob, name="beta")
    tick()
    client = api_for(bob)
    assert [e["id"] for e in client.get("/api/v1/queue?team=vision").json()["pending"]] == [a.pk]
    assert [e["id"] for e in client.get("/api/v1/queue?q=alpha").json()["pending"]] == [a.pk]
    assert client.get(f"/api/v1/queue/position/{a.pk}").status_code == 404  # bob may not read it
    answer = api_for(alice).get(f"/api/v1/queue/position/{a.pk}").json()
    assert answer["position"] == 1
    # Only what the schema declares (it once sent the whole queue entry, which typed clients refuse).
    assert set(answer) <= set(QueuePositionOut().fields) and {"status", "wait_reason"} <= set(answer)


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


def test_reads_show_the_stored_plan_and_never_plan(alice, monkeypatch, django_assert_max_num_queries):
    """The queue's order and positions are the last tick's, stored: reads never call the planner, and a
    job newer than the last tick is listed last (without a position) until the next tick places it."""
    from scheduling import estimates, planner

    first = make_job(alice, gpu_count=2, name="first")
    tick()
    calls = []
    monkeypatch.setattr(planner, "plan", lambda *a, **k: calls.append(a) or pytest.fail("planned"))
    monkeypatch.setattr(estimates, "estimate_starts", lambda *a, **k: pytest.fail("estimated"))
    client = api_for(alice)

    def positions():
        with django_assert_max_num_queries(12):
            body = client.get("/api/v1/queue").json()
        return [(e["id"], e["position"]) for e in body["pending"]]

    assert positions() == [(first.pk, 1)]
    second = make_job(alice, gpu_count=2, priority=20, name="second")
    assert positions() == [(first.pk, 1), (second.pk, None)]  # not yet planned
    assert client.get(f"/api/v1/queue/position/{second.pk}").json()["position"] is None
    assert client.get("/api/v1/queue/me").json()["best_position"] == 1
    assert calls == []
    monkeypatch.undo()
    tick()
    assert positions() == [(second.pk, 1), (first.pk, 2)]


def test_reads_of_an_unchanged_queue_sort_it_once_and_see_every_change(
    transactional_db, alice, monkeypatch, settings
):
    """Every open queue page refetches after each event: the whole queue's order is computed once per
    change in a process, not once per read, and any job coming or going (even one in, one out, through the
    status door, which writes their events) is seen."""
    from scheduling import listing
    from scheduling.transitions import transition

    settings.GPUQ_EVENT_TICKS = False  # no tick between the reads but those the test runs

    jobs = [make_job(alice, name=f"w{i}") for i in range(4)]
    paused = make_job(alice, name="paused", status=Status.PAUSED)
    tick()
    sorts = []
    real = listing._in_plan_order
    monkeypatch.setattr(listing, "_in_plan_order", lambda *a: sorts.append(1) or real(*a))
    client = api_for(alice)

    def waiting():
        return [e["id"] for e in client.get("/api/v1/queue").json()["pending"]]

    assert waiting() == [j.pk for j in jobs]
    assert waiting() == [j.pk for j in jobs] and len(sorts) == 1  # the second read reused the order
    # One leaves and one comes, with no tick in between: as many waiting as before.
    transition(jobs[1], Status.PAUSED, reason="test")
    transition(paused, Status.PENDING, reason="test")
    assert waiting() == [jobs[0].pk, jobs[2].pk, jobs[3].pk, paused.pk] and len(sorts) == 2
    tick()
    assert waiting() == [jobs[0].pk, jobs[2].pk, jobs[3].pk, paused.pk] and len(sorts) == 3  # a new plan


def test_the_stored_plan_is_read_once_per_tick(alice, django_assert_num_queries):
    from scheduling import planstore

    first = make_job(alice, name="first")
    tick()
    loaded = planstore.load()
    assert loaded.positions == {first.pk: 1}
    with django_assert_num_queries(1):  # only when it was stored: the plan is the one read last
        assert planstore.load() is loaded  # not parsed again
    second = make_job(alice, name="second", priority=20)
    tick()
    assert planstore.load().positions == {second.pk: 1, first.pk: 2}


def test_rows_link_their_job_and_its_actions_under_the_script_prefix(alice):
    """The rows' URLs are built from a pattern resolved once (templatetags job_url): they must still be
    the URL conf's, under a deployment's script prefix too."""
    from django.urls import set_script_prefix

    job = make_job(alice, name="mine")
    paused = make_job(alice, name="held", status=Status.PAUSED)
    html = browse(alice, "/")
    assert f'href="/jobs/{job.pk}/"' in html
    assert f'action="/jobs/{job.pk}/pause"' in html and f'action="/jobs/{job.pk}/cancel"' in html
    assert f'action="/jobs/{paused.pk}/resume"' in html
    from scheduling.templatetags.gpuq import job_url

    try:
        set_script_prefix("/gpuq/")
        assert job_url(job.pk) == f"/gpuq/jobs/{job.pk}/"
        assert job_url(12, "cancel") == "/gpuq/jobs/12/cancel"
    finally:
        set_script_prefix("/")
    assert job_url(12) == "/jobs/12/"


def test_the_queue_pages_counts_are_read_once_per_change_and_every_change_is_seen(
    transactional_db, alice, settings
):
    """Every open page refetches the queue after each event, and its counts (the held jobs', the header's)
    scan the whole queue: a process counts once per change, and the next change's event counts again."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from scheduling.transitions import transition

    # Committed changes (transactional_db): an event's position is given as its transaction commits.
    settings.GPUQ_EVENT_TICKS = False  # no tick between the reads but those the test runs
    jobs = [make_job(alice, name=f"w{i}") for i in range(3)]
    tick()
    client = Client()
    client.force_login(alice)

    def read():
        response = client.get("/?fragment=1")
        assert response.status_code == 200
        return response.context["held_page"].paginator.count, response.context["stats"]["queue_depth"]

    assert read() == (0, 3)
    with CaptureQueriesContext(connection) as queries:
        assert read() == (0, 3)
    counts = [q["sql"] for q in queries.captured_queries if "COUNT(" in q["sql"].upper()]
    assert counts == []  # nothing counted again: the queue did not change
    # The version the memo checks (the newest event, the newest job) is read once per page, not per value.
    newest = [q["sql"] for q in queries.captured_queries if 'MAX("scheduling_event"."seq")' in q["sql"]]
    assert len(newest) == 1, newest
    transition(jobs[0], Status.PAUSED, reason="test")  # its event is the change
    assert read() == (1, 2)
    make_job(alice, name="made without an event")  # a fixture's or an import's row: a new id
    assert read() == (1, 3)


def test_rows_kept_for_every_open_page_show_each_user_their_own_links_buttons_and_token(
    transactional_db, alice, bob, root, settings
):
    """A queue row is rendered once per queue version and shared between the open pages that show it
    (templatetags queue_row): whoever loads it first, each user still gets the link and the buttons they
    may have, and a CSRF token of their own session that a POST accepts."""
    from scheduling import services

    settings.GPUQ_EVENT_TICKS = False
    job = make_job(alice, name="alices")
    paused = make_job(alice, name="alices held", status=Status.PAUSED)
    carol = make_user("carol")
    for shared in (job, paused):  # carol may open alice's jobs, not act on them
        services.job_share(job=shared, user=alice, with_user=carol, permission="view")
    tick()

    def page(user) -> tuple[Client, str]:
        client = Client(enforce_csrf_checks=True)
        client.force_login(user)
        response = client.get("/?fragment=1")
        assert response.status_code == 200
        return client, response.content.decode()

    _, bobs = page(bob)  # first: the rows are kept as bob may see them
    _, carols = page(carol)
    _, alices = page(alice)
    _, roots = page(root)
    _, bobs_again = page(bob)
    for who, html in (("alice", alices), ("root", roots)):
        assert f'href="/jobs/{job.pk}/"' in html, who
        assert f'action="/jobs/{job.pk}/cancel"' in html and f'action="/jobs/{paused.pk}/resume"' in html, who
    for html in (bobs, bobs_again):
        assert f'href="/jobs/{job.pk}/"' not in html and "/cancel" not in html and "/resume" not in html
        assert f"#{job.pk} alices" in html  # the row itself: everyone sees the queue
    assert f'href="/jobs/{job.pk}/"' in carols and "/cancel" not in carols and "/resume" not in carols
    assert "gpuqCsrfTokenMark" not in alices + roots + bobs
    # One token per response, the one its session accepts.
    client, alices = page(alice)
    tokens = set(re.findall(r'name="csrfmiddlewaretoken" value="([^"]+)"', alices))
    assert len(tokens) == 1
    cancel = client.post(f"/jobs/{job.pk}/cancel", {"csrfmiddlewaretoken": tokens.pop(), "next": "/"})
    assert cancel.status_code == 302, cancel.content[:300]
    job.refresh_from_db()
    assert job.status == Status.CANCELLED


def test_open_pages_read_and_render_a_pages_rows_once_per_change_and_see_every_change(
    transactional_db, alice, bob, settings, monkeypatch
):
    """After each event every open queue page fetches its rows again: one process reads a page's rows and
    renders each row once per change for all of them; the next change (its event) is seen by all."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from scheduling import services
    from scheduling.templatetags import gpuq

    settings.GPUQ_EVENT_TICKS = False
    jobs = [make_job(alice, name=f"w{i}") for i in range(3)]
    tick()
    rendered = []
    real = gpuq.render_to_string
    monkeypatch.setattr(gpuq, "render_to_string", lambda *a, **k: rendered.append(a[0]) or real(*a, **k))
    clients = []
    for user in (alice, bob, bob):
        client = Client()
        client.force_login(user)
        clients.append(client)

    def rows_read(client) -> tuple[list[str], str]:
        with CaptureQueriesContext(connection) as queries:
            html = client.get("/?fragment=1").content.decode()
        # The rows' own reads join their owners (select_related); the permission checks do not.
        reads = [q["sql"] for q in queries.captured_queries if 'JOIN "auth_user"' in q["sql"]]
        return reads, html

    first, _ = rows_read(clients[0])
    assert first and len(rendered) == 3  # alice: her three rows, read and rendered
    second, _ = rows_read(clients[1])
    assert second == [] and len(rendered) == 6  # bob may not act on them: rendered for him, not read
    third, html = rows_read(clients[2])
    assert third == [] and len(rendered) == 6  # another of bob's pages: neither read nor rendered
    assert '<span class="prio high">' not in html
    services.job_set_priority(job=jobs[1], user=alice, priority=5)  # writes an event
    services.job_set_priority(job=jobs[1], user=alice, priority=5)
    reads, html = rows_read(clients[2])
    assert len(reads) == len(first) and len(rendered) == 9
    assert re.search(rf'data-job="{jobs[1].pk}".*?low 5</span>', html, re.S)


def test_a_running_rows_start_is_rendered_again_each_minute(
    transactional_db, alice, node, settings, monkeypatch
):
    """ "Started 5 minutes ago" changes with the clock, not with the queue: a kept running row is kept for
    the minute it was rendered in."""
    from scheduling.templatetags import gpuq

    settings.GPUQ_EVENT_TICKS = False
    make_job(alice, name="on it", status=Status.RUNNING, node=node, started_at=timezone.now())
    rendered = []
    real = gpuq.render_to_string
    monkeypatch.setattr(gpuq, "render_to_string", lambda *a, **k: rendered.append(a[0]) or real(*a, **k))
    browse(alice, "/?fragment=1")
    browse(alice, "/?fragment=1")
    assert rendered == ["scheduling/_queue_row_running.html"]
    clock = time.time() + 60
    monkeypatch.setattr(gpuq, "time", SimpleNamespace(time=lambda: clock))
    browse(alice, "/?fragment=1")
    assert len(rendered) == 2


def test_the_pages_held_rows_and_the_apis_held_window_are_kept_apart(transactional_db, alice, settings):
    """The queue page keeps its held rows by page number, the queue API its held window by offset: page
    1 and offset 1 are different rows, kept under different names."""
    settings.GPUQ_EVENT_TICKS = False
    held = [make_job(alice, name=f"h{i}", status=Status.PAUSED) for i in range(3)]
    tick()
    assert rows(browse(alice, "/?fragment=1&size=2"), "held") == [held[0].pk, held[1].pk]
    window = api_for(alice).get("/api/v1/queue?offset=1&limit=2").json()["held"]
    assert [e["id"] for e in window] == [held[1].pk, held[2].pk]
    assert rows(browse(alice, "/?fragment=1&size=2"), "held") == [held[0].pk, held[1].pk]
