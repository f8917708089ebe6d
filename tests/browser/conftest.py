"""Browser tests: a real gpuq (`gpuq_serve`: Daphne, a node and its executor cluster, on its own SQLite
database in a temporary folder) driven by Playwright in Debian's chromium. Screenshots of each page, at
1280 and 400 px wide, go to artifacts/screenshots/ (git-ignored); the server's output to artifacts/."""

import shutil
import signal
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from django.conf import settings

from tests.conftest import traversable_dir
from tests.e2e.conftest import free_port, start_serve, stop, wait_serving

SCREENSHOTS = settings.BASE_DIR / "artifacts" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@dataclass
class Gpuq:
    base: str
    password: str
    api: httpx.Client
    data: Path  # its data folder (its SQLite database)

    def submit(self, **body) -> dict:
        response = self.api.post("/api/v1/jobs", json=body)
        assert response.status_code == 201, response.text
        return response.json()


@pytest.fixture(scope="session")
def gpuq():
    data = traversable_dir("gpuq-browser")  # its jobs run as `nobody` on a root machine
    serve, base, password, token = start_serve(
        data,
        free_port(),
        GPUQ_DECLARED_GPUS="2x24GB",
        GPUQ_NODE_NAME="browser",
        GPUQ_HEARTBEAT_SECONDS="0.2",
        GPUQ_ESTIMATE_SECONDS="0",  # every tick stores its estimates: a waiting row settles after one tick
        GPUQ_WS_RECHECK_SECONDS="0.5",  # a page whose user logged out leaves soon
        GPUQ_LOG_DB_MAX_BYTES="196608",  # 3 chunks: a long log's head is dropped (test_job_log)
    )
    try:
        wait_serving(base)
        api = httpx.Client(base_url=base, headers={"Authorization": f"Token {token}"}, timeout=10)
        yield Gpuq(base, password, api, data)
    finally:
        stop(serve, signal.SIGINT, timeout=30)
        SCREENSHOTS.parent.mkdir(parents=True, exist_ok=True)  # what the server said, for a failure's story
        shutil.copyfile(
            serve.output,
            SCREENSHOTS.parent
            / f"browser-serve-{settings.DATABASES['default']['ENGINE'].rsplit('.', 1)[-1]}.out",
        )
        serve.output.unlink()
        shutil.rmtree(data, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.failed_call = report.failed


@pytest.fixture
def page(browser, gpuq, request):
    """A logged-in admin's page, 1280 px wide."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=gpuq.base)
    context.set_default_timeout(45000)  # generous, for every page of it: six shards share two cores in CI
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", gpuq.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{gpuq.base}/")
    yield page
    if getattr(request.node, "failed_call", False):  # what the page showed when the test failed
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"FAILED-{request.node.name}.png"), full_page=True)
        print(f"page at failure ({page.url}):\n{page.inner_text('body')[:3000]}")
    context.close()


def screenshot(page, name: str) -> None:
    """Save the page at 1280 and at 400 px wide, and check it does not scroll sideways at 400."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for width in (1280, 400):
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(SCREENSHOTS / f"{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{name} is {overflow} px too wide at {width} px"
    page.set_viewport_size({"width": 1280, "height": 900})


__all__ = ["Path", "screenshot"]
