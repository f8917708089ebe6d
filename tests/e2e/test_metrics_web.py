"""/metrics from a real `gpuq_web` (Daphne) process: refused without the token from an address outside
the allow-list, and with it the values agree with the same process's API."""

import httpx
import pytest

from accounts.models import ApiToken
from scheduling.states import Status
from tests.factories import make_job
from tests.scheduling.test_metrics import parse

pytestmark = [pytest.mark.processes, pytest.mark.django_db(transaction=True)]


def test_a_real_web_process_serves_metrics_behind_its_token(start_web, alice, team, node):
    make_job(alice, team=team)
    make_job(alice, team=team, status=Status.BLOCKED, wait_reason="approval")
    _, key = ApiToken.issue(user=alice)
    base = start_web(GPUQ_METRICS_TOKEN="tok-for-prometheus", GPUQ_METRICS_ALLOW="192.0.2.0/24")
    refused = httpx.get(f"{base}/metrics", timeout=10)  # from 127.0.0.1, which is not listed here
    assert refused.status_code == 403 and "not in GPUQ_METRICS_ALLOW" in refused.text
    wrong = httpx.get(f"{base}/metrics", headers={"Authorization": "Bearer nope"}, timeout=10)
    assert wrong.status_code == 403
    response = httpx.get(
        f"{base}/metrics", headers={"Authorization": "Bearer tok-for-prometheus"}, timeout=10
    )
    assert response.status_code == 200
    samples = parse(response.text)
    stats = httpx.get(
        f"{base}/api/v1/queue/stats", headers={"Authorization": f"Token {key}"}, timeout=10
    ).json()
    assert samples.get_value("gpuq_jobs", status="pending") == stats["by_status"]["pending"] == 1
    assert samples.get_value("gpuq_jobs", status="blocked") == stats["by_status"]["blocked"] == 1
    assert samples.get_value("gpuq_jobs_waiting", status="blocked", reason="approval") == 1
    assert samples.get_value("gpuq_gpu_memory_total_bytes", node="testnode", index="1") == 24 * 1024**3
