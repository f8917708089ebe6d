"""The job page's live log in a real browser: it reads what the node shipped to the database, waits out a
503 (the database away) for its Retry-After, and says how many early bytes are no longer kept."""

import pytest

from tests.conftest import JOB_PYTHON, wait_for

pytestmark = pytest.mark.processes


def test_the_live_log_waits_out_a_503_and_says_what_was_not_kept(page, gpuq):
    code = "for i in range(20000): print(f'line {i:06d}')\nprint('the end')"  # 240 KB: over the 64 KiB kept
    job = gpuq.submit(argv=[JOB_PYTHON, "-c", code], name="long-log")
    wait_for(
        lambda: gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed",
        timeout=30,
        message="the job to complete",
    )
    answered = []

    def database_away_once(route):
        if not answered:  # the first read meets the database away
            answered.append(503)
            route.fulfill(
                status=503,
                headers={"Retry-After": "1", "Content-Type": "application/json"},
                body='{"detail": "The database is unavailable; retry later.", "retry_after": 1}',
            )
        else:
            answered.append(200)
            route.continue_()

    page.route("**/api/v1/jobs/*/log?offset=*", database_away_once)
    page.goto(f"/jobs/{job['id']}/")
    page.wait_for_function("document.getElementById('log').textContent.includes('the end')")
    text = page.inner_text("#log")
    assert answered[:2] == [503, 200]
    assert "earlier bytes not kept" in text and "line 000000" not in text and "line 019999" in text
