"""Charts in a real browser: the job page draws a job's loss curve and adds its points live as the job
reports them (no reload), the compare page puts several jobs' curves on one chart, and the analytics
page's bars have axes."""

import pytest

from tests.browser.conftest import screenshot
from tests.conftest import JOB_PYTHON, job_writable, traversable_dir, wait_for

pytestmark = pytest.mark.processes

# Reports a loss, then waits for the test's word before each further report, so the test sees each
# point arrive while the page stays open.
TRAINING = (
    "import json, os, sys, time\n"
    "go = sys.argv[1]\n"
    "for step, loss in enumerate((2.0, 1.0, 0.5), 1):\n"
    "    while step > 1 and not os.path.exists(f'{go}/{step}'): time.sleep(0.05)\n"
    "    json.dump({'loss': loss, 'step': step}, open(os.environ['GPUQ_PROGRESS_FILE'], 'w'))\n"
    "while not os.path.exists(f'{go}/end'): time.sleep(0.05)\n"
)


def points(page, series: str) -> int:
    return int(page.get_attribute(f"#job-charts figure[data-series='{series}']", "data-points") or 0)


def test_a_jobs_loss_curve_gets_its_points_live_as_the_job_reports_them(page, gpuq):
    go = job_writable(traversable_dir("charts-go") / "go")
    job = gpuq.submit(argv=[JOB_PYTHON, "-c", TRAINING, str(go)], name="training")
    try:
        wait_for(
            lambda: gpuq.api.get(f"/api/v1/jobs/{job['id']}/metrics").json()["series"],
            timeout=30,
            message="the first loss point",
        )
        page.goto(f"/jobs/{job['id']}/")
        page.wait_for_selector("#live-status.on")
        page.evaluate("window.notReloaded = true")
        page.wait_for_selector("#job-charts figure[data-series='loss'][data-points='1']")
        for step in (2, 3):
            (go / str(step)).write_text("go")
            page.wait_for_selector(
                f"#job-charts figure[data-series='loss'][data-points='{step}']", timeout=20000
            )
        assert page.evaluate("window.notReloaded") is True
        figure = page.locator("#job-charts figure[data-series='loss']")
        assert figure.locator("figcaption").inner_text() == "loss"
        assert figure.locator(".u-axis").count() == 2  # a time axis and a value axis
        assert "loss" in figure.locator(".u-legend").inner_text()
        over = figure.locator(".u-over")
        box = over.bounding_box()
        over.hover(position={"x": box["width"] - 2, "y": box["height"] / 2})
        figure.locator(".chart-tip", has_text="loss: 0.5").wait_for()  # the tooltip at the newest point
        page.select_option("#job-charts select[name=range]", "300")
        screenshot(page, "job-charts")
    finally:
        (go / "end").write_text("go")


def test_the_compare_page_draws_each_jobs_curve_on_one_chart(page, gpuq):
    go = job_writable(traversable_dir("charts-compare") / "go")
    for name in ("2", "3", "end"):
        (go / name).write_text("go")
    jobs = [gpuq.submit(argv=[JOB_PYTHON, "-c", TRAINING, str(go)], name=f"lr-{i}") for i in (1, 2)]
    for job in jobs:
        wait_for(
            lambda job=job: gpuq.api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "completed",
            timeout=30,
            message="the job to complete",
        )
    ids = ",".join(str(job["id"]) for job in jobs)
    page.goto(f"/jobs/compare/?jobs={ids},999999&series=loss")
    page.wait_for_selector("#compare .chart-box[data-series='loss']")
    legend = page.inner_text("#compare .u-legend")
    assert all(f"#{job['id']} lr-" in legend for job in jobs)
    assert "Not found or not yours to read: #999999" in page.inner_text("main")
    screenshot(page, "compare")


def test_the_analytics_bars_have_axes_on_a_shared_scale(page, gpuq):
    page.goto("/analytics/")
    page.wait_for_selector(".bar-chart .u-axis")
    failure = page.locator("figure", has_text="Failure rate")
    assert failure.locator(".u-axis").count() == 2
    assert "on a scale from 0 to 100" in failure.locator(".bar-chart").get_attribute("aria-label")
