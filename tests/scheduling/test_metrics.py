"""/metrics: scraped with the test client, parsed with prometheus-client's own parser, and checked
against what the API says (queue stats, system status with allocation, quota status); refused without
the token or an allowed address; its queries do not grow with the jobs; the Grafana dashboard uses only
names it exposes."""

import ipaddress
import json
import re
from collections import defaultdict
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from gpus.models import Allocation, Gpu, Node
from scheduling import quotas
from scheduling.metrics import BUCKETS, MIB
from scheduling.metrics import scrape as render
from scheduling.models import Event, JobStateTransition
from scheduling.states import TERMINAL, Status
from scheduling.tick import tick
from tests.conftest import api_for, make_user
from tests.factories import make_job

DASHBOARD = settings.BASE_DIR / "deploy" / "grafana" / "gpuq.json"


class Samples(dict):
    """Sample name → {frozenset of label pairs: value}."""

    def get_value(self, name: str, **labels) -> float | None:
        return self.get(name, {}).get(frozenset(labels.items()))

    def by(self, name: str, *keys: str) -> dict:
        return {tuple(dict(labels)[k] for k in keys): v for labels, v in self.get(name, {}).items()}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return samples


def scrape(client: Client | None = None, **request) -> Samples:
    response = (client or Client()).get("/metrics", **request)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    return parse(response.content.decode())


@pytest.fixture
def busy_queue(alice, bob, team, node):
    """Two GPUs: alice's 1-GPU job and bob's run, others wait (resources), one blocked, one finished."""
    make_job(alice, team=team, name="a1")
    make_job(bob, name="b1")
    make_job(alice, team=team, name="a2")
    make_job(bob, gpu_count=2, name="b2")
    make_job(alice, team=team, status=Status.BLOCKED, wait_reason="approval", wait_detail="big")
    make_job(bob, status=Status.COMPLETED)
    tick()


def test_jobs_by_status_and_wait_reason_match_the_queue_api(alice, busy_queue):
    metrics = scrape()
    api = api_for(alice)
    stats = api.get("/api/v1/queue/stats").json()
    for status in set(Status.values) - TERMINAL:
        assert metrics.get_value("gpuq_jobs", status=status) == stats["by_status"].get(status, 0), status
    assert metrics.get_value("gpuq_jobs", status="completed") == 1
    assert stats["running"] == 2 and stats["queue_depth"] == 2
    queue = api.get("/api/v1/queue").json()
    reasons = defaultdict(int)
    running = defaultdict(int)
    for entry in queue["pending"] + queue["held"]:
        reasons[(entry["status"], entry["wait_reason"] or "none")] += 1
    for entry in queue["running"]:
        running[(entry["owner"],)] += 1
    assert metrics.by("gpuq_jobs_waiting", "status", "reason") == reasons
    assert reasons[("blocked", "approval")] == 1 and reasons[("pending", "resources")] >= 1
    assert metrics.by("gpuq_user_running_jobs", "user") == running == {("alice",): 1, ("bob",): 1}
    assert metrics.by("gpuq_team_running_jobs", "team") == {("vision",): 1}
    assert metrics.get_value("gpuq_queue_paused") == 0


def test_each_gpu_and_node_matches_the_system_status(alice, busy_queue, node):
    gpu = Gpu.objects.get(node=node, index=1)
    gpu.memory_used_mb, gpu.utilization_percent, gpu.temperature_c = 20480, 87, 71
    gpu.save()
    metrics = scrape()
    status = api_for(alice).get("/api/v1/system/status?include_allocation=true").json()
    devices = status["gpu_allocation"]["devices"]
    assert len(devices) == 2
    allocated = metrics.by("gpuq_gpu_allocated", "node", "index", "job", "user")
    assert allocated == {
        (d["node"], str(d["index"]), str(d["job_id"] or ""), d["owner"] or ""): float(d["allocated"])
        for d in devices
    }
    for d in devices:
        at = {"node": d["node"], "index": str(d["index"])}
        assert metrics.get_value("gpuq_gpu_memory_total_bytes", **at) == d["memory_mb"] * MIB
        assert metrics.get_value("gpuq_gpu_healthy", **at) == float(d["healthy"])
        assert metrics.get_value("gpuq_gpu_busy_foreign", **at) == float(d["busy"])
        for name, key, scale in (
            ("gpuq_gpu_memory_used_bytes", "memory_used_mb", MIB),
            ("gpuq_gpu_utilization_percent", "utilization_percent", 1),
            ("gpuq_gpu_temperature_celsius", "temperature_c", 1),
        ):
            expected = d[key] * scale if d[key] is not None else None
            assert metrics.get_value(name, **at) == expected, name
    assert metrics.get_value("gpuq_gpu_temperature_celsius", node="testnode", index="1") == 71
    assert metrics.by("gpuq_user_allocated_gpus", "user") == {("alice",): 1, ("bob",): 1}
    [api_node] = status["nodes"]
    assert metrics.get_value("gpuq_node_up", node="testnode") == float(api_node["status"] == "online")
    assert metrics.get_value("gpuq_node_drained", node="testnode") == 0


def test_gpu_seconds_match_the_quota_status(alice, bob, team, node, quota_day_at_noon):
    """Finished allocations in this quota week (fixed values, so both reads agree), and the limits."""
    now = timezone.now()
    gpus = list(Gpu.objects.filter(node=node))
    for owner, seconds, ago in ((alice, 1800, 60), (alice, 600, 3000), (bob, 900, 40)):
        job = make_job(owner, team=team if owner == alice else None, status=Status.COMPLETED)
        start = now - timedelta(seconds=ago + seconds)
        for gpu in gpus:
            Allocation.objects.create(
                gpu=gpu,
                job=job,
                attempt=1,
                allocated_at=start,
                released_at=start + timedelta(seconds=seconds),
            )
    quotas.quota_set(by=make_user("adm", level="admin"), user=alice, daily_gpu_seconds=36000)
    quotas.quota_set(by=make_user("adm2", level="admin"), team=team, weekly_gpu_seconds=720000)
    metrics = scrape()
    mine = api_for(alice).get("/api/v1/quota/status").json()
    theirs = api_for(bob).get("/api/v1/quota/status").json()
    for api_window, window in (("daily", "day"), ("weekly", "week")):
        for user, body in (("alice", mine), ("bob", theirs)):
            value = metrics.get_value("gpuq_user_gpu_seconds", user=user, window=window) or 0
            assert round(value) == body["user"][api_window]["used_gpu_seconds"], (user, window)
        value = metrics.get_value("gpuq_team_gpu_seconds", team="vision", window=window) or 0
        assert round(value) == mine["team"][api_window]["used_gpu_seconds"]
    assert mine["user"]["weekly"]["used_gpu_seconds"] >= 2 * 1800  # the quota week began hours ago
    assert metrics.get_value("gpuq_user_gpu_seconds_limit", user="alice", window="day") == 36000
    assert metrics.get_value("gpuq_team_gpu_seconds_limit", team="vision", window="week") == 720000
    assert metrics.get_value("gpuq_user_gpu_seconds_limit", user="alice", window="week") is None


def test_wait_and_submit_to_running_histograms_count_the_last_24_hours(alice, node):
    now = timezone.now()

    def started(submitted_ago: float, waited: float, ran_after: float):
        """A job submitted `submitted_ago` s ago, pending `waited` s, running `ran_after` s after submit."""
        submitted = now - timedelta(seconds=submitted_ago)
        job = make_job(alice, status=Status.RUNNING, submitted_at=submitted)
        job.started_at = submitted + timedelta(seconds=ran_after)
        job.save()
        for to_status, at in (
            (Status.PENDING, submitted),
            (Status.DISPATCHED, submitted + timedelta(seconds=waited)),
            (Status.RUNNING, job.started_at),
        ):
            JobStateTransition.objects.create(job=job, to_status=to_status, at=at)
        return job

    started(100, 3, 4)  # waited 3 s, running after 4 s
    started(5000, 200, 250)
    started(3 * 86400, 10, 12)  # started two days ago: outside the window
    samples = parse(render(now).decode())
    stats = api_for(alice).get("/api/v1/queue/stats").json()
    count = samples.get_value("gpuq_job_submit_to_running_seconds_count")
    total = samples.get_value("gpuq_job_submit_to_running_seconds_sum")
    assert count == 2 and total == 254
    assert stats["avg_wait_seconds"] == round(total / count, 1)
    assert samples.get_value("gpuq_job_submit_to_running_seconds_bucket", le="1.0") == 0
    assert samples.get_value("gpuq_job_submit_to_running_seconds_bucket", le="5.0") == 1
    assert samples.get_value("gpuq_job_submit_to_running_seconds_bucket", le="300.0") == 2
    assert samples.get_value("gpuq_job_wait_seconds_count") == 2
    assert samples.get_value("gpuq_job_wait_seconds_sum") == 203
    assert samples.get_value("gpuq_job_wait_seconds_bucket", le="5.0") == 1
    assert samples.get_value("gpuq_job_wait_seconds_bucket", le="+Inf") == 2
    assert len(samples["gpuq_job_wait_seconds_bucket"]) == len(BUCKETS) + 1


def test_node_heartbeat_age_and_the_newest_event(node):
    now = timezone.now()
    Node.objects.filter(pk=node.pk).update(heartbeat_at=now - timedelta(seconds=7))
    Event.objects.create(kind=Event.Kind.QUEUE, at=now - timedelta(seconds=42))
    newest = Event.objects.order_by("-id").first()
    samples = parse(render(now).decode())
    assert samples.get_value("gpuq_node_heartbeat_age_seconds", node="testnode") == 7
    assert samples.get_value("gpuq_events_last_id") == newest.id
    assert samples.get_value("gpuq_events_newest_age_seconds") == 42


def test_a_scrape_from_an_address_outside_the_allow_list_is_refused(db, settings):
    assert Client().get("/metrics").status_code == 200  # the test client comes from 127.0.0.1
    assert Client(REMOTE_ADDR="::1").get("/metrics").status_code == 200
    refused = Client(REMOTE_ADDR="192.0.2.7").get("/metrics")
    assert refused.status_code == 403
    assert b"192.0.2.7 is not in GPUQ_METRICS_ALLOW" in refused.content
    settings.GPUQ_METRICS_ALLOW = [ipaddress.ip_network("192.0.2.0/24")]
    assert Client(REMOTE_ADDR="192.0.2.7").get("/metrics").status_code == 200
    assert Client().get("/metrics").status_code == 403  # 127.0.0.1 is no longer listed


def test_a_scrape_with_the_token_passes_and_a_wrong_token_is_refused(db, settings):
    outside = Client(REMOTE_ADDR="192.0.2.7")
    response = outside.get("/metrics", HTTP_AUTHORIZATION="Bearer anything")
    assert response.status_code == 403 and b"no GPUQ_METRICS_TOKEN is set" in response.content
    settings.GPUQ_METRICS_TOKEN = "s3cret-metrics-token"
    assert outside.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token").status_code == 200
    for wrong in ("Bearer s3cret", "Token s3cret-metrics-token", "Bearer"):
        response = outside.get("/metrics", HTTP_AUTHORIZATION=wrong)
        assert response.status_code == 403 and b"wrong token" in response.content, wrong
    # A wrong token is refused even from an allowed address: a credential is never ignored.
    assert Client().get("/metrics", HTTP_AUTHORIZATION="Bearer nope").status_code == 403
    assert Client().post("/metrics").status_code == 405


def test_a_scrape_makes_the_same_number_of_queries_however_many_jobs(alice, bob, team, node):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            scrape()
        return len(captured)

    for _ in range(2):
        make_job(alice, team=team)
    tick()
    few = queries()
    for i in range(40):
        make_job(alice if i % 2 else bob, team=team if i % 2 else None, wait_reason="resources")
    make_job(bob, status=Status.BLOCKED, wait_reason="approval")
    tick()
    assert queries() == few


def test_the_grafana_dashboard_uses_every_metric_and_only_those(alice, team, busy_queue, node):
    Gpu.objects.filter(node=node).update(memory_used_mb=1000, utilization_percent=50, temperature_c=60)
    Node.objects.filter(pk=node.pk).update(heartbeat_at=timezone.now())
    admin = make_user("adm", level="admin")
    quotas.quota_set(by=admin, user=alice, daily_gpu_seconds=3600)
    quotas.quota_set(by=admin, team=team, weekly_gpu_seconds=36000)
    text = Client().get("/metrics").content.decode()
    exposed = set(parse(text))
    families = {family.name for family in text_string_to_metric_families(text)}
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [
        target["expr"]
        for panel in dashboard["panels"]
        for target in panel.get("targets", [])
        if "expr" in target
    ]
    for variable in dashboard["templating"]["list"]:  # variables' queries (label_values(...))
        query = variable.get("query", "")
        exprs.append(query["query"] if isinstance(query, dict) else query)
    used = {name for expr in exprs for name in re.findall(r"\bgpuq_[a-z_]+", expr)}
    assert len(used) >= 15 and used <= exposed | families, sorted(used - exposed - families)
    # ... and every family /metrics exposes has a panel (a histogram through its _bucket/_sum/_count).
    bases = {re.sub(r"_(bucket|sum|count)$", "", name) for name in used}
    assert families <= used | bases, sorted(families - used - bases)


def test_a_retried_jobs_wait_is_its_latest_time_in_the_queue(alice, node):
    now = timezone.now()
    submitted = now - timedelta(seconds=1000)
    job = make_job(alice, status=Status.RUNNING, submitted_at=submitted)
    job.started_at = now - timedelta(seconds=100)
    job.save()
    for to_status, ago in (
        (Status.PENDING, 1000),
        (Status.DISPATCHED, 990),
        (Status.RUNNING, 989),
        (Status.PENDING, 500),  # retried after a lost node
        (Status.DISPATCHED, 440),
        (Status.RUNNING, 100),
    ):
        JobStateTransition.objects.create(job=job, to_status=to_status, at=now - timedelta(seconds=ago))
    samples = parse(render(now).decode())
    assert samples.get_value("gpuq_job_wait_seconds_count") == 1
    assert samples.get_value("gpuq_job_wait_seconds_sum") == 60
    assert samples.get_value("gpuq_job_submit_to_running_seconds_sum") == 900
