"""The approvals inbox in a real browser: an admin follows the header's link, sees a researcher's blocked
jobs with their cost and rule, approves one at 1280 px, and approves and rejects (with a reason) at 400 px."""

import os
import subprocess
import sys

import httpx
import pytest
from django.conf import settings

from tests.browser.conftest import screenshot

pytestmark = pytest.mark.processes

MAKE_RESEARCHER = """
from django.contrib.auth import get_user_model
from accounts.models import ApiToken, Profile, Team
team, _ = Team.objects.get_or_create(name="vision")
user, made = get_user_model().objects.get_or_create(username="rita")
if made:
    Profile.objects.create(user=user, level="researcher", team=team)
print(ApiToken.issue(user=user)[1])
"""


def researcher_api(gpuq) -> httpx.Client:
    """A researcher of team vision in that gpuq (made through its own manage.py), and her API client."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "Q_CLUSTER_NAME", "SECRET_KEY")}
    made = subprocess.run(
        [sys.executable, str(settings.BASE_DIR / "manage.py"), "shell", "-c", MAKE_RESEARCHER],
        env={**env, "GPUQ_DATA_DIR": str(gpuq.data)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    key = made.stdout.strip().splitlines()[-1]
    return httpx.Client(base_url=gpuq.base, headers={"Authorization": f"Token {key}"}, timeout=10)


def test_an_admin_approves_and_rejects_from_the_inbox_at_1280_and_400_px(page, gpuq):
    rita = researcher_api(gpuq)
    policy = gpuq.api.post(
        "/api/v1/policies", json={"type": "approval", "config": {"levels": ["researcher"]}}
    )
    assert policy.status_code == 201, policy.text
    try:
        jobs = []
        for message in ("first", "second", "third"):
            response = rita.post(
                "/api/v1/jobs",
                json={"template": "hello-gpu", "params": {"message": message}, "time_limit_seconds": 3600},
            )
            assert response.status_code == 201 and response.json()["status"] == "blocked", response.text
            jobs.append(response.json()["id"])
        page.goto("/")
        page.click("header nav a:has-text('Approvals')")
        page.wait_for_url(f"{gpuq.base}/approvals/")
        for job in jobs:
            row = page.inner_text(f"#approvals tr[data-job='{job}']")
            assert "rita" in row and "jobs of researchers need approval" in row and "1 GPU × 1.0 h" in row
        screenshot(page, "approvals")

        first, second, third = jobs
        page.click(f"tr[data-job='{first}'] button[data-action=approve]")
        page.wait_for_selector(f".messages li:has-text('Job {first} approved.')")
        assert page.query_selector(f"tr[data-job='{first}']") is None
        assert rita.get(f"/api/v1/jobs/{first}").json()["status"] != "blocked"

        page.set_viewport_size({"width": 400, "height": 900})
        page.click(f"tr[data-job='{second}'] button[data-action=approve]")
        page.wait_for_selector(f".messages li:has-text('Job {second} approved.')")
        page.fill(f"tr[data-job='{third}'] input[name=reason]", "use fewer GPUs")
        page.click(f"tr[data-job='{third}'] button[data-action=reject]")
        page.wait_for_selector(f".messages li:has-text('Job {third} rejected.')")
        assert page.query_selector("#none-waiting") is not None
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 1
        assert rita.get(f"/api/v1/jobs/{second}").json()["status"] != "blocked"
        rejected = rita.get(f"/api/v1/jobs/{third}").json()
        assert rejected["status"] == "rejected" and rejected["transitions"][-1]["reason"] == "use fewer GPUs"
    finally:
        gpuq.api.delete(f"/api/v1/policies/{policy.json()['id']}")
