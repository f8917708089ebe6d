"""The queue page follows the queue live: a job appears, starts, shows its progress and finishes
without a reload."""

import pytest

from tests.browser.conftest import screenshot
from tests.conftest import JOB_PYTHON

pytestmark = pytest.mark.processes

# Reports progress twice, slowly enough for the page to show each.
STEPS = (
    "import json, os, time\n"
    "for fraction, message in ((0.3, 'warming up'), (0.8, 'almost')):\n"
    "    json.dump({'fraction': fraction, 'message': message}, open(os.environ['GPUQ_PROGRESS_FILE'], 'w'))\n"
    "    time.sleep(1.5)\n"
)


def test_a_job_appears_starts_shows_progress_and_finishes_without_reloading(page, gpuq):
    page.goto("/")
    page.wait_for_selector("#live-status.on")
    page.evaluate("window.notReloaded = true")
    blocker = gpuq.submit(argv=["sleep", "4"], gpu_count=2, name="blocker")
    job = gpuq.submit(argv=[JOB_PYTHON, "-c", STEPS], name="steps")

    page.wait_for_selector(f"#running tr[data-job='{blocker['id']}']")
    # Until the first tick has planned it the row says "next tick"; then it waits for the two GPUs
    # the blocker holds.
    page.wait_for_selector(f"#pending tr[data-job='{job['id']}'] .reason:text-is('resources')")
    screenshot(page, "queue")

    page.wait_for_selector(f"#running tr[data-job='{job['id']}']", timeout=20000)
    page.wait_for_function(
        f"document.querySelector(\"[data-progress='{job['id']}']\")?.value >= 0.8", timeout=20000
    )
    assert "80% almost" in page.inner_text(f"#running tr[data-job='{job['id']}']")
    page.wait_for_selector(f"tr[data-job='{job['id']}']", state="detached", timeout=20000)
    assert page.evaluate("window.notReloaded") is True
    assert gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed"


def test_priorities_have_their_colours(page, gpuq):
    # The blocker outlasts the test, so both rows stay waiting; a live update may still re-render a row
    # between finding it and reading its style (a detached row reads ''), so both are read in one go,
    # once both rows are there.
    blocker = gpuq.submit(argv=["sleep", "300"], gpu_count=2)
    urgent = gpuq.submit(argv=["true"], priority=30, gpu_count=2)
    low = gpuq.submit(argv=["true"], priority=0, gpu_count=2)
    try:
        page.goto("/")
        colours = page.wait_for_function(
            """(ids) => {
                const colour = (id) => {
                    const badge = document.querySelector(`tr[data-job='${id}'] .prio`);
                    return badge && getComputedStyle(badge).backgroundColor;
                };
                const [urgent, low] = ids.map(colour);
                return urgent && low ? {urgent, low} : null;
            }""",
            arg=[urgent["id"], low["id"]],
        ).json_value()
        assert colours == {"urgent": "rgb(198, 40, 40)", "low": "rgb(117, 117, 117)"}
    finally:
        for job in (low, urgent, blocker):
            gpuq.api.post(f"/api/v1/jobs/{job['id']}/cancel", json={})


def test_a_page_whose_user_logs_out_in_another_tab_goes_to_the_login_page(page, gpuq):
    """The server closes the socket with 4401 at its next re-check; the page does not reconnect but
    goes to the login page, which would bring the user back to the queue."""
    page.goto("/")
    page.wait_for_selector("#live-status.on")
    other = page.context.new_page()
    other.goto("/gpus/")
    other.click("form.logout button")
    other.wait_for_url("**/accounts/login/")
    page.wait_for_url("**/accounts/login/?next=%2F", timeout=20000)
    assert page.locator("input[name=username]").is_visible()
