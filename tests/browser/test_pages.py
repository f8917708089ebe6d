"""Pages in a real browser: submit from the submit page and watch the job live on the queue page, pause
and resume from the buttons, reorder the waiting queue by drag and drop in the admin, and every page at
1280 and 400 px wide."""

import re

import pytest

from tests.browser.conftest import screenshot
from tests.conftest import wait_for

pytestmark = pytest.mark.processes


def test_submit_from_the_page_then_watch_it_on_the_queue_page(page, gpuq):
    page.goto("/submit/")
    page.select_option("select[name=template]", "hello-gpu")
    page.wait_for_selector("input[name=param_message]")
    page.fill("input[name=param_message]", "from the browser")
    page.fill("input[name=name]", "browser-hello")
    screenshot(page, "submit")
    page.click("form#submit button[type=submit]")
    page.wait_for_url(re.compile(r"/jobs/\d+/$"))
    job_id = int(page.url.rstrip("/").rsplit("/", 1)[1])
    page.wait_for_selector(".status.completed", timeout=20000)  # the job page follows it live
    page.wait_for_function("document.getElementById('log').textContent.includes('from the browser')")
    screenshot(page, "job")

    blocker = gpuq.submit(argv=["sleep", "3"], gpu_count=2, name="blocker")
    page.goto("/")
    page.wait_for_selector("#live-status.on")
    page.evaluate("window.notReloaded = true")
    second = gpuq.submit(argv=["true"], name="after-blocker")
    page.wait_for_selector(f"#pending tr[data-job='{second['id']}']")
    page.wait_for_selector(f"tr[data-job='{blocker['id']}']", state="detached", timeout=20000)
    page.wait_for_selector(f"tr[data-job='{second['id']}']", state="detached", timeout=20000)
    assert page.evaluate("window.notReloaded") is True
    assert gpuq.api.get(f"/api/v1/jobs/{job_id}").json()["status"] == "completed"


def test_pause_and_resume_from_the_buttons(page, gpuq):
    job = gpuq.submit(argv=["sleep", "30"], name="pausable")
    wait_for(lambda: gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "running", timeout=20)
    page.goto(f"/jobs/{job['id']}/")
    page.wait_for_selector("#live-status.on")
    page.wait_for_selector(".status.running")
    page.click("button[data-action=pause]")
    page.wait_for_selector(".status.paused", timeout=15000)
    assert gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "paused"
    page.click("button[data-action=resume]")
    page.wait_for_selector(".status.running", timeout=15000)
    attempts = page.inner_text("#attempts")
    assert "paused" in attempts  # the first attempt ended paused; the second runs
    page.click("button[data-action=cancel]")
    page.wait_for_selector(".status.cancelled", timeout=15000)


def test_drag_a_job_to_a_new_place_in_the_admin(page, gpuq):
    blocker = gpuq.submit(argv=["sleep", "300"], gpu_count=2, name="blocker")  # cancelled at the end
    first, second, third = (
        gpuq.submit(argv=["true"], name=n, priority=20) for n in ("first", "second", "third")
    )
    page.goto("/admin/scheduling/job/queue/")
    ours = {first["id"], second["id"], third["id"]}

    def rows():  # the order of this test's jobs on the page (others may wait too)
        ids = page.eval_on_selector_all("#queue li[data-job]", "els => els.map(e => +e.dataset.job)")
        return [i for i in ids if i in ours]

    assert rows() == [first["id"], second["id"], third["id"]]
    screenshot(page, "admin-queue")
    page.drag_and_drop(f"#queue li[data-job='{third['id']}']", f"#queue li[data-job='{first['id']}']")
    page.wait_for_selector("#status:has-text('Moved job')")
    assert rows() == [third["id"], first["id"], second["id"]]
    queue = gpuq.api.get("/api/v1/queue").json()["pending"]
    assert [j["id"] for j in queue if j["id"] in ours] == [third["id"], first["id"], second["id"]]
    page.goto(f"/admin/scheduling/job/{third['id']}/change/")
    assert "moved before job" in page.content() and "admin" in page.content()
    for job in (blocker, first, second, third):
        gpuq.api.post(f"/api/v1/jobs/{job['id']}/cancel")


@pytest.mark.parametrize("path", ["/", "/me/", "/gpus/", "/analytics/"])
def test_every_page_is_usable_at_1280_and_400_px(page, gpuq, path):
    page.goto(path)
    name = path.strip("/") or "queue-empty"
    screenshot(page, name)
    assert page.locator("nav a").count() >= 5
