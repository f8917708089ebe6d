"""Each policy through the API, the real tick and the real executor (run in this process, as a django-q2
worker would run it, with real child processes)."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from accounts.models import Level
from gpus.models import Allocation, Gpu
from scheduling import executor
from scheduling.models import Job, JobAudit, PolicyType
from scheduling.policies import enabled_configs, set_policy, to_planner
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for, make_user, wait_for
from tests.scheduling.helpers import PY, run_in_thread


@pytest.fixture
def raw(alice, bob):
    permission = Permission.objects.get(codename="submit_raw_command")
    for user in (alice, bob):
        user.user_permissions.add(permission)


def submit(user, argv=("true",), **body):
    response = api_for(user).post("/api/v1/jobs", {"argv": list(argv), **body}, format="json")
    assert response.status_code == 201, response.json()
    return Job.objects.get(pk=response.json()["id"])


def status_of(job):
    job.refresh_from_db()
    return job.status


def run_dispatched():
    """Execute every dispatched job to its end, like the node's workers would."""
    tick()
    for job in Job.objects.filter(status=Status.DISPATCHED):
        executor.run_job(job.pk, job.lease_token)
    tick()


def waiting(job):
    job.refresh_from_db()
    return job.wait_reason, job.wait_detail


def use_gpu(user, seconds, gpu):
    """Record `seconds` of finished GPU use by `user` (an allocation released just now)."""
    now = timezone.now()
    old = Job.objects.create(
        owner=user, argv=["true"], status=Status.COMPLETED, team=getattr(user.profile, "team", None)
    )
    Allocation.objects.create(
        gpu=gpu, job=old, attempt=1, allocated_at=now - timedelta(seconds=seconds), released_at=now
    )


# --- priority ----------------------------------------------------------------------------------------


def test_priority_higher_first_owner_may_lower_lead_may_raise_and_it_is_logged(alice, bob, root, node, raw):
    blocker = submit(root, gpu_count=2, argv=["sleep", "30"])
    tick()
    low = submit(alice, priority=0)
    normal = submit(bob)
    tick()
    queue = api_for(alice).get("/api/v1/queue").json()["pending"]
    assert [(e["id"], e["position"]) for e in queue] == [(normal.pk, 1), (low.pk, 2)]
    assert api_for(alice).post(f"/api/v1/jobs/{low.pk}/priority", {"priority": 20}).status_code == 403
    assert api_for(alice).post(f"/api/v1/jobs/{normal.pk}/priority", {"priority": 0}).status_code == 404
    assert (
        api_for(root)
        .post(f"/api/v1/jobs/{low.pk}/priority", {"priority": 20, "reason": "deadline"})
        .status_code
        == 200
    )
    tick()  # the tick the change asked for, which stores the new order
    assert [e["id"] for e in api_for(alice).get("/api/v1/queue").json()["pending"]] == [low.pk, normal.pk]
    audit = JobAudit.objects.get(job=low)
    assert (audit.by, audit.action, audit.detail) == (root, "priority", "0 → 20. deadline")
    assert blocker.pk


def test_admins_reorder_within_a_priority(alice, root, node, raw):
    submit(root, gpu_count=2, argv=["sleep", "30"])
    tick()
    first, second, third = submit(alice), submit(alice), submit(alice)
    response = api_for(root).post(
        "/api/v1/queue/reorder", {"job": third.pk, "before": first.pk}, format="json"
    )
    assert response.status_code == 200 and response.json()["position"] == 1
    assert [e["id"] for e in api_for(alice).get("/api/v1/queue").json()["pending"]] == [
        third.pk,
        first.pk,
        second.pk,
    ]
    assert api_for(alice).post("/api/v1/queue/reorder", {"job": first.pk}, format="json").status_code == 403


def test_ageing_lifts_an_old_low_priority_job(alice, bob, root, node, raw):
    set_policy(
        PolicyType.AGEING, enabled=True, config={"starvation_threshold_minutes": 60, "boost_per_hour": 10}
    )
    submit(root, gpu_count=2, argv=["sleep", "30"])
    tick()
    old = submit(alice, priority=0)
    Job.objects.filter(pk=old.pk).update(submitted_at=timezone.now() - timedelta(hours=3))
    new = submit(bob, priority=10)
    assert [e["id"] for e in api_for(bob).get("/api/v1/queue").json()["pending"]] == [old.pk, new.pk]


# --- limits, fair share, quotas --------------------------------------------------------------------------


def test_a_user_limit_holds_a_users_second_job_but_not_others(alice, bob, root, node, raw):
    response = api_for(root).post("/api/v1/queue/concurrency", {"user_max_concurrent": 1}, format="json")
    assert response.json() == {"max_concurrent": None, "user_max_concurrent": 1, "team_max_concurrent": None}
    a1, a2 = submit(alice, argv=["sleep", "30"]), submit(alice, argv=["sleep", "30"])
    b1 = submit(bob, argv=["sleep", "30"])
    tick()
    assert [status_of(j) for j in (a1, a2, b1)] == [Status.DISPATCHED, Status.PENDING, Status.DISPATCHED]
    assert waiting(a2)[0] == "user_limit"
    assert (
        api_for(alice).post("/api/v1/queue/concurrency", {"max_concurrent": 9}, format="json").status_code
        == 403
    )


def test_a_global_limit_and_a_team_limit(alice, bob, root, team, node, raw):
    carol = make_user("carol", team=team)
    carol.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    api_for(root).post("/api/v1/queue/concurrency", {"team_max_concurrent": 1}, format="json")
    a, c, b = (
        submit(alice, argv=["sleep", "9"]),
        submit(carol, argv=["sleep", "9"]),
        submit(bob, argv=["sleep", "9"]),
    )
    tick()
    assert [status_of(j) for j in (a, c, b)] == [Status.DISPATCHED, Status.PENDING, Status.DISPATCHED]
    assert waiting(c)[0] == "team_limit"
    api_for(root).post(
        "/api/v1/queue/concurrency", {"max_concurrent": 0, "team_max_concurrent": None}, format="json"
    )
    d = submit(bob)
    tick()
    assert waiting(d)[0] == "global_limit" and "of 0 jobs" in waiting(d)[1]


def test_fair_share_lets_a_light_user_pass_a_heavy_one(alice, bob, root, node, raw):
    set_policy(PolicyType.FAIR_SHARE, enabled=True, config={"half_life_hours": 24})
    use_gpu(alice, 36_000, Gpu.objects.get(node=node, index=0))
    submit(root, gpu_count=2, argv=["sleep", "30"])
    tick()
    heavy = [submit(alice) for _ in range(3)]
    light = submit(bob)
    tick()
    assert api_for(bob).get("/api/v1/queue").json()["pending"][0]["id"] == light.pk
    assert heavy


def test_an_exceeded_quota_holds_new_starts_and_the_status_says_so(
    alice, bob, root, node, raw, quota_day_at_noon
):
    response = api_for(root).put(
        "/api/v1/admin/quotas", {"user": "alice", "daily_gpu_seconds": 3600}, format="json"
    )
    assert response.status_code == 200 and response.json()["daily_gpu_seconds"] == 3600
    use_gpu(alice, 3000, Gpu.objects.get(node=node, index=0))
    status = api_for(alice).get("/api/v1/quota/status").json()
    assert (
        status["user"]["daily"]["used_gpu_seconds"] == 3000
        and status["user"]["daily"]["remaining_gpu_seconds"] == 600
    )
    assert status["warning"] is True and status["exceeded"] is False  # past 80%
    assert status["user"]["weekly"]["limit_gpu_seconds"] is None  # no weekly limit: unlimited
    use_gpu(alice, 600, Gpu.objects.get(node=node, index=1))
    held, free = submit(alice), submit(bob)
    tick()
    assert status_of(held) == Status.PENDING and waiting(held)[0] == "quota"
    assert status_of(free) == Status.DISPATCHED
    assert api_for(alice).get("/api/v1/quota/status").json()["exceeded"] is True
    assert api_for(alice).put("/api/v1/admin/quotas", {"user": "alice"}, format="json").status_code == 403


def test_a_team_quota_holds_the_teams_jobs(alice, bob, root, team, node, raw, quota_day_at_noon):
    api_for(root).put("/api/v1/admin/quotas", {"team": "vision", "weekly_gpu_seconds": 100}, format="json")
    use_gpu(alice, 200, Gpu.objects.get(node=node, index=0))
    held, free = submit(alice), submit(bob)
    tick()
    assert waiting(held)[0] == "quota" and "team's weekly" in waiting(held)[1]
    assert status_of(free) == Status.DISPATCHED


# --- time ------------------------------------------------------------------------------------------------


def test_start_after_schedules_the_job_until_its_time(alice, node, raw):
    later = timezone.now() + timedelta(hours=1)
    job = submit(alice, start_after=later.isoformat())
    assert status_of(job) == Status.SCHEDULED and waiting(job)[0] == "begin_time"
    tick()
    assert status_of(job) == Status.SCHEDULED
    Job.objects.filter(pk=job.pk).update(start_after=timezone.now() - timedelta(seconds=1))
    tick()
    assert status_of(job) == Status.DISPATCHED
    assert [t.to_status for t in job.transitions.order_by("id")] == ["scheduled", "pending", "dispatched"]


def test_off_peak_jobs_start_only_inside_the_window(alice, node, raw):
    now = timezone.now()
    closed = {
        "start": (now + timedelta(hours=2)).strftime("%H:%M"),
        "end": (now + timedelta(hours=3)).strftime("%H:%M"),
    }
    set_policy(PolicyType.OFF_PEAK, enabled=True, config=closed)
    job = submit(alice, off_peak_only=True)
    tick()
    assert waiting(job)[0] == "off_peak"
    open_ = {
        "start": (now - timedelta(hours=1)).strftime("%H:%M"),
        "end": (now + timedelta(hours=1)).strftime("%H:%M"),
    }
    set_policy(PolicyType.OFF_PEAK, enabled=True, config=open_)
    tick()
    assert status_of(job) == Status.DISPATCHED


# --- approval ----------------------------------------------------------------------------------------------


def test_a_costly_job_waits_for_approval_and_a_lead_approves_it(alice, root, team, node, raw):
    set_policy(PolicyType.APPROVAL, enabled=True, config={"max_gpus": 1})
    lead = make_user("lena", level=Level.LEAD, team=team)
    job = submit(alice, gpu_count=2)
    assert status_of(job) == Status.BLOCKED and "2 GPUs is more than 1" in waiting(job)[1]
    tick()
    assert status_of(job) == Status.BLOCKED
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/approve").status_code == 403
    assert (
        api_for(lead).post(f"/api/v1/jobs/{job.pk}/approve", {"reason": "ok for the deadline"}).status_code
        == 200
    )
    assert status_of(job) == Status.PENDING
    tick()
    assert status_of(job) == Status.DISPATCHED
    approval = job.transitions.get(from_status="blocked")
    assert (approval.to_status, approval.triggered_by, approval.reason) == (
        "pending",
        lead,
        "ok for the deadline",
    )


def test_a_rejected_job_needs_a_reason_and_ends_rejected(alice, root, node, raw):
    set_policy(
        PolicyType.APPROVAL, enabled=True, config={"max_cost": 1.0, "price_per_gpu_hour": {"Simulated*": 2.0}}
    )
    job = submit(alice, time_limit_seconds=3600)  # 1 GPU × 1 h × 2.0 = 2.0 > 1.0
    assert status_of(job) == Status.BLOCKED and "estimated cost 2.00" in waiting(job)[1]
    assert api_for(root).post(f"/api/v1/jobs/{job.pk}/reject", {}).status_code == 400
    assert api_for(root).post(f"/api/v1/jobs/{job.pk}/reject", {"reason": "too expensive"}).status_code == 200
    job.refresh_from_db()
    assert job.status == Status.REJECTED and job.transitions.last().reason == "too expensive"


# --- dependencies, conflicts, serial ---------------------------------------------------------------------------


def test_a_dependent_job_starts_when_its_dependency_completes(alice, node, raw):
    first = submit(alice, argv=[PY, "-c", "pass"])
    second = submit(alice, depends_on=[first.pk])
    tick()
    assert status_of(first) == Status.DISPATCHED and waiting(second)[0] == "dependency"
    run_dispatched()
    assert status_of(first) == Status.COMPLETED and status_of(second) == Status.DISPATCHED


def test_a_dependent_job_fails_when_its_dependency_fails(alice, node, raw):
    first = submit(alice, argv=[PY, "-c", "raise SystemExit(1)"])
    second = submit(alice, depends_on=[first.pk])
    run_dispatched()
    assert status_of(first) == Status.FAILED
    assert status_of(second) == Status.FAILED and second.error.startswith("dependency")


def test_a_dependency_on_someone_elses_job_is_refused_as_if_it_did_not_exist(alice, bob, raw, node):
    theirs = submit(bob)
    response = api_for(alice).post(
        "/api/v1/jobs", {"argv": ["true"], "depends_on": [theirs.pk]}, format="json"
    )
    assert response.status_code == 422 and response.json() == {"depends_on": [f"no job {theirs.pk}"]}


def test_a_conflicting_job_waits_for_the_holder_then_starts(alice, bob, node, raw):
    holder = submit(alice, argv=[PY, "-c", "pass"], resources=["model:flux-dev"])
    tick()
    waiting_job = submit(bob, resources=["model:flux-dev"])
    tick()
    assert waiting(waiting_job) == ("conflict", f"model:flux-dev is held by job {holder.pk}")
    run_dispatched()
    assert status_of(waiting_job) == Status.DISPATCHED


def test_serial_mode_runs_one_job_at_a_time(alice, node, raw):
    set_policy(PolicyType.SERIAL, enabled=True, config={"scope": "global"})
    first, second = submit(alice, argv=[PY, "-c", "pass"]), submit(alice)
    tick()
    assert status_of(first) == Status.DISPATCHED and waiting(second)[0] == "serial"
    run_dispatched()
    assert status_of(second) == Status.DISPATCHED


# --- expiry, backfill ------------------------------------------------------------------------------------------


def test_jobs_waiting_longer_than_the_limit_expire(alice, node, raw):
    set_policy(PolicyType.EXPIRY, enabled=True, config={"max_wait_hours": 1})
    set_policy(PolicyType.QUEUE_PAUSE, enabled=True)
    job = submit(alice)
    Job.objects.filter(pk=job.pk).update(submitted_at=timezone.now() - timedelta(hours=2))
    tick()
    job.refresh_from_db()
    assert job.status == Status.FAILED and job.error.startswith("expired")


def test_backfill_starts_a_short_job_without_delaying_the_big_one(alice, bob, root, node, raw):
    set_policy(PolicyType.BACKFILL, enabled=True)
    busy = submit(root, argv=["sleep", "30"], time_limit_seconds=1800)
    tick()
    big = submit(alice, gpu_count=2, time_limit_seconds=3600)
    endless = submit(bob)  # no time limit: it could run past the big job's reservation
    short = submit(bob, time_limit_seconds=600)
    tick()
    assert status_of(busy) == Status.DISPATCHED
    assert status_of(short) == Status.DISPATCHED
    assert status_of(big) == Status.PENDING and "reserved on testnode" in waiting(big)[1]
    assert status_of(endless) == Status.PENDING and waiting(endless)[0] == "resources"
    estimates = {e["id"]: e["estimated_start"] for e in api_for(alice).get("/api/v1/queue").json()["pending"]}
    assert estimates[big.pk] is not None


# --- preemption, pause and resume ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_preemption_requeues_a_preemptible_job_for_an_urgent_one(alice, root, node, raw, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    set_policy(PolicyType.PREEMPTION, enabled=True, config={"min_priority": 30, "max_victim_priority": 10})
    victims = [submit(alice, argv=["sleep", "600"], preemptible=True, gpu_count=1) for _ in range(2)]
    for v in victims:  # the ticker starts them
        wait_for(lambda v=v: status_of(v) == Status.DISPATCHED, message="the ticker to start the victims")
    threads = [run_in_thread(Job.objects.get(pk=v.pk))[0] for v in victims]
    for v in victims:
        wait_for(lambda v=v: status_of(v) == Status.RUNNING, message="the victims to run")
    urgent = submit(root, argv=[PY, "-c", "pass"], priority=30)
    stopped = wait_for(
        lambda: [v for v in victims if status_of(v) == Status.PENDING], timeout=10, message="a preemption"
    )
    assert len(stopped) == 1
    stopped[0].refresh_from_db()
    assert (
        stopped[0].attempt == 2
        and stopped[0].transitions.filter(reason=f"preempted for job {urgent.pk}").exists()
    )
    wait_for(lambda: status_of(urgent) == Status.DISPATCHED, message="the urgent job to start")
    for v in victims:
        Job.objects.filter(pk=v.pk, status=Status.RUNNING).update(stop_request="cancel")
    for thread in threads:
        thread.join(timeout=10)


@pytest.mark.django_db(transaction=True)
def test_pausing_a_running_job_stops_it_frees_its_gpu_and_resume_requeues_it(alice, node, raw, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 0.5
    job = submit(alice, argv=["sleep", "600"])
    wait_for(lambda: status_of(job) == Status.DISPATCHED, message="the ticker to start it")
    thread, result = run_in_thread(Job.objects.get(pk=job.pk))
    wait_for(lambda: status_of(job) == Status.RUNNING, message="the job to run")
    response = api_for(alice).post(f"/api/v1/jobs/{job.pk}/pause", {"reason": "need the GPU for a demo"})
    assert response.status_code == 202
    thread.join(timeout=10)
    job.refresh_from_db()
    assert result == ["paused"] and job.status == Status.PAUSED and job.attempt == 2
    assert not Allocation.objects.active().exists()
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/resume").status_code == 200
    # Resumed, and started by the ticker on the free GPU.
    wait_for(lambda: status_of(job) == Status.DISPATCHED, message="the ticker to start it again")
    Job.objects.filter(pk=job.pk).update(status=Status.CANCELLED)  # do not leave it for the executor


def test_pausing_a_pending_job_holds_it(alice, root, node, raw):
    submit(root, gpu_count=2, argv=["sleep", "30"])
    tick()
    job = submit(alice)
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/pause").status_code == 200
    assert status_of(job) == Status.PAUSED
    assert api_for(alice).get("/api/v1/queue").json()["held"][0]["id"] == job.pk
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/pause").status_code == 409


def test_pausing_and_resuming_a_scheduled_job_keeps_its_start_time(alice, node, raw):
    later = timezone.now() + timedelta(hours=2)
    job = submit(alice, start_after=later)
    assert status_of(job) == Status.SCHEDULED
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/pause").status_code == 200
    assert api_for(alice).post(f"/api/v1/jobs/{job.pk}/resume").status_code == 200
    tick()
    job.refresh_from_db()
    assert job.status == Status.SCHEDULED and job.wait_reason == "begin_time"  # not started before its time


def test_a_paused_queue_starts_nothing_until_resumed(alice, root, node, raw):
    assert api_for(alice).post("/api/v1/queue/pause").status_code == 403
    assert api_for(root).post("/api/v1/queue/pause", {"reason": "maintenance"}).status_code == 204
    job = submit(alice)
    tick()
    assert waiting(job)[0] == "queue_paused"
    assert api_for(alice).get("/api/v1/queue/stats").json()["queue_paused"] is True
    assert api_for(root).post("/api/v1/queue/resume").status_code == 204
    tick()
    assert status_of(job) == Status.DISPATCHED


# --- visibility ------------------------------------------------------------------------------------------------------


def test_stats_me_and_position(alice, bob, root, node, raw):
    endless = submit(root, gpu_count=2, argv=["sleep", "30"])
    Job.objects.filter(pk=endless.pk).update(time_limit_seconds=None)  # a job from before every job had one
    tick()
    b1, a1, a2 = submit(bob), submit(alice), submit(alice)
    tick()
    stats = api_for(alice).get("/api/v1/queue/stats").json()
    assert (stats["queue_depth"], stats["running"]) == (3, 1)
    assert stats["by_user"] == {"root": 1, "bob": 1, "alice": 2} and stats["by_status"]["pending"] == 3
    me = api_for(alice).get("/api/v1/queue/me").json()
    assert (me["pending_count"], me["running_count"], me["best_position"]) == (2, 0, 2)
    position = api_for(alice).get(f"/api/v1/queue/position/{a2.pk}").json()
    assert (position["position"], position["wait_reason"]) == (3, "priority")  # strict order: behind a1
    # Root's job has no time limit and no history: when a1 and a2 start is unknown, not "in an hour".
    assert position["estimated_start"] is None and position["estimated_start_latest"] is None
    assert api_for(alice).get(f"/api/v1/queue/position/{b1.pk}").status_code == 404
    assert a1


def test_estimates_follow_the_planner_forward_in_time(alice, root, node, raw):
    busy = submit(root, gpu_count=2, argv=["sleep", "30"], time_limit_seconds=600)
    tick()
    Job.objects.filter(pk=busy.pk).update(started_at=timezone.now())
    first = submit(alice, time_limit_seconds=300)
    second = submit(alice, gpu_count=2, time_limit_seconds=300)
    tick()
    pending = {e["id"]: e["estimated_start"] for e in api_for(alice).get("/api/v1/queue").json()["pending"]}
    from datetime import datetime

    start1, start2 = (datetime.fromisoformat(pending[j.pk].replace("Z", "+00:00")) for j in (first, second))
    assert timedelta(minutes=9) < start1 - timezone.now() <= timedelta(minutes=10)  # when busy ends
    assert timedelta(minutes=4) < start2 - start1 <= timedelta(minutes=5)  # then after first


def test_the_queue_shows_a_range_up_to_the_hard_bound_that_does_not_move(alice, root, node, raw, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 600
    busy = submit(root, gpu_count=2, argv=["sleep", "30"], time_limit_seconds=600)
    tick()
    started = timezone.now() - timedelta(minutes=11)  # past its limit: in its grace period
    Job.objects.filter(pk=busy.pk).update(started_at=started)
    job = submit(alice, time_limit_seconds=300)
    tick()
    bound = started + timedelta(seconds=600 + settings.GPUQ_KILL_GRACE_SECONDS)
    for _ in range(2):  # asked twice, a moment apart: the same answer
        entry = api_for(alice).get("/api/v1/queue").json()["pending"][0]
        assert entry["id"] == job.pk
        assert (
            entry["estimated_start"]
            == entry["estimated_start_latest"]
            == bound.isoformat().replace("+00:00", "Z")
        )
    page = Client()
    page.force_login(alice)
    html = page.get("/").content.decode()
    assert f'<time class="latest" datetime="{bound.isoformat()}">' in html  # the page shows the range


def test_a_scheduled_job_released_after_its_start_time_does_not_expire_at_once(alice, node, raw):
    set_policy(PolicyType.EXPIRY, enabled=True, config={"max_wait_hours": 1})
    set_policy(PolicyType.QUEUE_PAUSE, enabled=True)
    later = timezone.now() + timedelta(hours=1)
    job = submit(alice, start_after=later.isoformat())
    assert status_of(job) == Status.SCHEDULED
    # It was submitted two hours before its start time, which has just come.
    Job.objects.filter(pk=job.pk).update(
        submitted_at=timezone.now() - timedelta(hours=2), start_after=timezone.now() - timedelta(seconds=1)
    )
    tick()
    assert status_of(job) == Status.PENDING and waiting(job)[0] == "queue_paused"


def test_policies_are_validated_and_only_admins_change_them(alice, root):
    bad = api_for(root).post(
        "/api/v1/policies", {"type": "off_peak", "config": {"start": "25:00"}}, format="json"
    )
    assert bad.status_code == 400 and "start" in str(bad.json()["config"])
    tz = api_for(root).post(
        "/api/v1/policies", {"type": "off_peak", "config": {"timezone": "Mars/Base"}}, format="json"
    )
    assert tz.status_code == 422 and "unknown time zone" in str(tz.json())
    ok = api_for(root).post(
        "/api/v1/policies", {"type": "off_peak", "config": {"timezone": "Europe/Paris"}}, format="json"
    )
    assert ok.status_code == 201 and ok.json()["config"] == {
        "start": "22:00",
        "end": "08:00",
        "timezone": "Europe/Paris",
    }
    assert api_for(alice).get("/api/v1/policies").status_code == 200
    assert (
        api_for(alice)
        .patch(f"/api/v1/policies/{ok.json()['id']}", {"enabled": False}, format="json")
        .status_code
        == 403
    )
    assert (
        api_for(root)
        .patch(f"/api/v1/policies/{ok.json()['id']}", {"enabled": False}, format="json")
        .status_code
        == 200
    )


def test_quota_admission_and_minimum_runtime_are_policy_keys(root):
    bad = api_for(root).post(
        "/api/v1/policies", {"type": "quota", "config": {"admit": "always"}}, format="json"
    )
    assert bad.status_code == 400 and "admit" in str(bad.json()["config"])
    for body in (
        {"type": "quota", "config": {"admit": "any_remaining"}, "enabled": True},
        {"type": "preemption", "config": {"min_runtime_seconds": 600}, "enabled": True},
    ):
        assert api_for(root).post("/api/v1/policies", body, format="json").status_code == 201
    planned = to_planner(enabled_configs())
    assert planned.quota_admit == "any_remaining" and planned.preemption.min_runtime_seconds == 600


def test_a_job_approved_after_a_long_wait_for_approval_does_not_expire_at_once(alice, root, team, node, raw):
    set_policy(PolicyType.APPROVAL, enabled=True, config={"max_gpus": 1})
    set_policy(PolicyType.EXPIRY, enabled=True, config={"max_wait_hours": 1})
    set_policy(PolicyType.QUEUE_PAUSE, enabled=True)
    job = submit(alice, gpu_count=2)
    Job.objects.filter(pk=job.pk).update(submitted_at=timezone.now() - timedelta(hours=3))
    lead = make_user("lena", level=Level.LEAD, team=team)
    assert api_for(lead).post(f"/api/v1/jobs/{job.pk}/approve").status_code == 200
    tick()
    assert status_of(job) == Status.PENDING and waiting(job)[0] == "queue_paused"
