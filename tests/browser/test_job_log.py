"""The job page's log viewer in a real browser, at 1280 and 400 px: it opens at the log's end, waits out
a 503 (the database away) for its Retry-After, loads earlier parts until it says which bytes are no
longer kept, follows a running job, searches on the server and jumps to a match from the keyboard, and
downloads the whole stored log."""

import pytest

from tests.browser.conftest import screenshot
from tests.conftest import JOB_PYTHON, wait_for

pytestmark = pytest.mark.processes

# 240 KB: more than the browser server keeps (GPUQ_LOG_DB_MAX_BYTES 192 KiB), several 64 KiB windows.
LONG = "for i in range(20000): print(f'line {i:06d}')\nprint('the end')"


@pytest.fixture(scope="module")
def long_job(gpuq):
    job = gpuq.submit(argv=[JOB_PYTHON, "-c", LONG], name="long-log")
    wait_for(
        lambda: gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed",
        timeout=60,
        message="the job to complete",
    )
    return job


def log_text(page) -> str:
    return page.inner_text("#log")


@pytest.mark.parametrize("width", [1280, 400])
def test_the_log_opens_at_its_end_and_loads_earlier_parts_until_none_are_kept(page, gpuq, long_job, width):
    page.set_viewport_size({"width": width, "height": 900})
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

    page.route("**/api/v1/jobs/*/log?*", database_away_once)
    page.goto(f"/jobs/{long_job['id']}/")
    page.wait_for_function("document.getElementById('log').textContent.includes('the end')")
    assert answered[:2] == [503, 200]
    assert "line 019999" in log_text(page) and "line 000000" not in log_text(page)
    shown = page.evaluate(
        "document.getElementById('log').scrollTop + document.getElementById('log').clientHeight"
    )
    assert shown >= page.evaluate("document.getElementById('log').scrollHeight") - 8  # scrolled to the end
    page.wait_for_function("!document.getElementById('log-earlier').disabled")
    first_line = log_text(page).split("\n", 1)[0]
    for _ in range(10):  # earlier parts are kept: load them until the viewer says what is not
        if page.is_disabled("#log-earlier"):
            break
        length = len(log_text(page))
        page.click("#log-earlier")
        page.wait_for_function(f"document.getElementById('log').textContent.length > {length}")
    text = log_text(page)
    assert text.index("earlier bytes not kept") < text.index(first_line) < text.index("the end")
    assert "earlier bytes not kept" in text and page.is_disabled("#log-earlier") and "line 000000" not in text
    screenshot(page, "job-log-earlier")


@pytest.mark.parametrize("width", [1280, 400])
def test_searching_the_log_from_the_keyboard_jumps_to_the_match(page, gpuq, long_job, width):
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"/jobs/{long_job['id']}/")
    page.wait_for_function("document.getElementById('log').textContent.includes('the end')")
    page.focus("#log-q")
    page.keyboard.type("LINE 00999")  # ten lines, kept, before the end's window
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelectorAll('#log-matches li').length === 10")
    assert "10 matches" in page.inner_text("#log-status")
    assert page.evaluate("document.activeElement.textContent") == "line 009990"
    page.keyboard.press("Enter")  # jump to the first match
    page.wait_for_function("document.querySelector('#log mark') !== null")
    assert page.inner_text("#log mark") == "line 00999"
    in_view = """(() => {
        const mark = document.querySelector('#log mark').getBoundingClientRect();
        const log = document.getElementById('log').getBoundingClientRect();
        return mark.top >= log.top && mark.bottom <= log.bottom;
    })()"""
    page.wait_for_function(in_view)  # shown in the log's own view (earlier text may load above it)
    assert page.evaluate("document.activeElement.id") == "log"
    assert "the end" in log_text(page)  # the rest of this small log, to its end
    screenshot(page, "job-log-search")


def test_a_search_with_no_match_says_so(page, gpuq, long_job):
    page.goto(f"/jobs/{long_job['id']}/")
    page.fill("#log-q", "no such text")
    page.click("#log-search button")
    page.wait_for_function("document.getElementById('log-status').textContent.includes('No matches')")
    assert page.is_hidden("#log-results")


def test_the_download_link_gives_the_whole_stored_log(page, gpuq, long_job):
    page.goto(f"/jobs/{long_job['id']}/")
    with page.expect_download() as download:
        page.click("#log-download")
    path = download.value.path()
    data = open(path, "rb").read()
    stored = gpuq.api.get(f"/api/v1/jobs/{long_job['id']}/log/download")
    assert download.value.suggested_filename == f"job-{long_job['id']}.log"
    assert data == stored.content and b"line 019999\nthe end\n" in data


def test_the_log_follows_a_running_job(page, gpuq):
    code = "import time\nprint('first', flush=True)\ntime.sleep(2)\nprint('later', flush=True)"
    job = gpuq.submit(argv=[JOB_PYTHON, "-c", code], name="slow-log")
    page.goto(f"/jobs/{job['id']}/")
    page.wait_for_function("document.getElementById('log').textContent.includes('later')", timeout=60000)
    assert log_text(page).index("first") < log_text(page).index("later")
    # Leave the shared server's GPUs free for the next tests.
    wait_for(lambda: gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed", timeout=60)
