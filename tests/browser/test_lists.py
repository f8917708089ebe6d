"""Paging, search and filters on the queue and on my jobs, at 1280 and 400 px wide; a live change
replaces only its own row, keeps the focus where it was and is announced to screen readers."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.processes


@pytest.fixture
def waiting(gpuq):
    """Make jobs that wait (for a job scheduled tomorrow) under a unique name; cancel them all after."""
    made = []
    anchor = gpuq.submit(argv=["true"], start_after=(datetime.now(UTC) + timedelta(days=1)).isoformat())
    made.append(anchor)

    def make(count: int) -> tuple[str, list[dict]]:
        prefix = "w" + uuid.uuid4().hex[:8]
        jobs = [
            gpuq.submit(argv=["true"], name=f"{prefix}-{i}", depends_on=[anchor["id"]]) for i in range(count)
        ]
        made.extend(jobs)
        return prefix, jobs

    yield make
    for job in reversed(made):
        gpuq.api.post(f"/api/v1/jobs/{job['id']}/cancel")


def pending_names(page) -> list[str]:
    return page.eval_on_selector_all(
        "#pending tbody tr td:nth-child(2)", "cells => cells.map(c => c.innerText)"
    )


@pytest.mark.parametrize("width", [1280, 400])
def test_the_queue_pages_searches_and_filters(page, waiting, width):
    page.set_viewport_size({"width": width, "height": 900})
    prefix, jobs = waiting(7)
    page.goto(f"/?q={prefix}&size=3")
    assert len(pending_names(page)) == 3 and all(prefix in name for name in pending_names(page))
    assert "page 1 of 3 (7 jobs)" in page.inner_text("nav.pager")
    page.click("nav.pager a[rel=next]")
    page.wait_for_url(f"**/?q={prefix}&size=3&page=2")
    assert [n.split(" ", 1)[1] for n in pending_names(page)] == [f"{prefix}-{i}" for i in (3, 4, 5)]

    page.goto("/")
    page.fill("#filters input[name=q]", prefix)
    page.select_option("#filters select[name=reason]", "dependency")
    page.click("#filters button[type=submit]")
    page.wait_for_url(f"**/?q={prefix}&status=&owner=&team=&reason=dependency&template=&sort=position")
    assert len(pending_names(page)) == 7
    page.select_option("#filters select[name=sort]", "newest")
    page.click("#filters button[type=submit]")
    page.wait_for_url("**sort=newest")
    assert pending_names(page)[0] == f"#{jobs[-1]['id']} {prefix}-6"
    screenshot(page, "queue-filtered")

    page.fill("#filters input[name=owner]", "nobody-at-all")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("text=No job is waiting that matches.")


@pytest.mark.parametrize("width", [1280, 400])
def test_my_jobs_page_searches_filters_and_pages(page, waiting, width):
    page.set_viewport_size({"width": width, "height": 900})
    prefix, jobs = waiting(4)
    page.goto(f"/me/?q={prefix}&size=2")
    assert "page 1 of 2 (4 jobs)" in page.inner_text("nav.pager")
    first = page.eval_on_selector_all("#mine tbody tr", "rows => rows.map(r => Number(r.dataset.job))")
    assert first == [jobs[3]["id"], jobs[2]["id"]]  # newest first
    page.click("nav.pager a[rel=next]")
    page.wait_for_url("**page=2")
    page.select_option("#filters select[name=status]", "completed")
    page.click("#filters button[type=submit]")
    page.wait_for_selector("text=None of your jobs matches.")
    assert f"q={prefix}" in page.url
    screenshot(page, "me-filtered")


def test_a_live_change_replaces_only_its_row_keeps_focus_and_is_announced(page, gpuq, waiting):
    prefix, (kept, gone) = waiting(2)
    page.goto(f"/?q={prefix}")
    page.wait_for_selector("#live-status.on")
    # The kept row must be settled before it is marked: until the first tick after the submissions it
    # still says "next tick", and the tick's own event would rightly replace it.
    page.wait_for_function(
        f"(document.querySelector(\"tr[data-job='{kept['id']}'] .reason\") || {{}}).textContent === 'dependency'",
        timeout=20000,
    )
    page.evaluate("window.notReloaded = true")
    page.evaluate(f"document.querySelector(\"tr[data-job='{kept['id']}']\").keptRow = true")
    page.focus(f"tr[data-job='{kept['id']}'] button[data-action=pause]")

    assert gpuq.api.post(f"/api/v1/jobs/{gone['id']}/cancel").status_code == 200
    page.wait_for_selector(f"tr[data-job='{gone['id']}']", state="detached", timeout=20000)
    page.wait_for_function(
        f"document.getElementById('live-announce').textContent.includes('job #{gone['id']}')", timeout=10000
    )
    assert page.evaluate("window.notReloaded") is True
    assert page.evaluate(f"document.querySelector(\"tr[data-job='{kept['id']}']\").keptRow") is True
    assert page.evaluate("document.activeElement.dataset.action") == "pause"
    assert page.evaluate("document.activeElement.closest('tr').dataset.job") == str(kept["id"])

    # A row that changes is replaced, and focus moves to the same control of its new version.
    page.focus(f"tr[data-job='{kept['id']}'] button[data-action=cancel]")
    assert gpuq.api.post(f"/api/v1/jobs/{kept['id']}/pause").status_code in (200, 202)
    page.wait_for_selector(f"#held tr[data-job='{kept['id']}']", timeout=20000)
    page.wait_for_function("document.getElementById('live-announce').textContent.includes('paused')")
    assert page.evaluate("window.notReloaded") is True
