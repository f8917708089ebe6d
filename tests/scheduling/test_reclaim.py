"""Idle-GPU reclaim (the idle_reclaim policy) on fake NVML readings: an idle job is warned, then stopped
with reason idle (for real, by its executor), or only reported; one busy reading starts over; a template
that allows idle is left alone, and only admins may say so; the watch survives a node's restart."""

import sys
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from accounts.models import Level
from gpus.inventory import GpuInfo
from gpus.services import node_refresh_gpus, node_refresh_inventory, node_register
from scheduling import reclaim
from scheduling.models import Event, IdleWatch, Job, JobTemplate, PolicyType, StopRequest
from scheduling.policies import set_policy, validate_config
from scheduling.states import Status
from scheduling.stops import IDLE_ERROR
from scheduling.tick import tick
from scheduling.transitions import transition
from tests.conftest import api_for, make_user, wait_for
from tests.factories import make_job
from tests.gpus.test_inventory import fake_pynvml
from tests.scheduling.helpers import dispatch, run_in_thread, running_attempt

GB = 1024**3
MIN = timedelta(minutes=1)


@pytest.fixture
def nvml(monkeypatch):
    """Two fake NVML GPUs; set each dict's "util" before a refresh to change what the next one reads."""
    devices = [{"uuid": f"GPU-{i}", "total": 80 * GB, "util": 0} for i in range(2)]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices))
    return devices


def register(nvml) -> object:
    from gpus import nvml as reader

    return node_register(name="gpubox", backend="nvml", gpus=reader.read_gpus(), labels={}, boot_id="b")


@pytest.fixture
def gpubox(db, nvml):
    return register(nvml)


@pytest.fixture
def policy(db):
    return set_policy(
        PolicyType.IDLE_RECLAIM,
        enabled=True,
        config={"utilization_percent": 10, "idle_minutes": 30, "grace_minutes": 15},
    )


def running(owner, **fields) -> Job:
    """A job that a real tick placed and that its executor claimed (started now)."""
    job = make_job(owner, **fields)
    tick()
    job.refresh_from_db()
    assert job.status == Status.DISPATCHED, (job.wait_reason, job.wait_detail)
    return transition(job, Status.RUNNING, token=job.lease_token, started_at=timezone.now())


def check(node, nvml, *utils: int, at) -> dict:
    """One refresh of the node's readings with these utilizations (GPU 0, 1), then the idle check."""
    for device, util in zip(nvml, utils, strict=False):
        device["util"] = util
    node_refresh_inventory(node=node)
    return reclaim.idle_check(node=node, now=at)


def notices(job: Job, notice: str) -> list[Event]:
    return list(Event.objects.filter(job_id=job.pk, data__notice=notice))


def test_an_idle_job_is_warned_then_asked_to_stop_with_reason_idle(alice, nvml, gpubox, policy):
    job = running(alice)
    t0 = timezone.now()
    assert check(gpubox, nvml, 3, 0, at=t0) == {"warned": [], "stopped": [], "reported": []}
    assert IdleWatch.objects.get(job=job).idle_since == t0
    assert check(gpubox, nvml, 3, at=t0 + 29 * MIN)["warned"] == []
    gpubox = register(nvml)  # the node restarts: what it knew of the job's idleness is in the database
    assert check(gpubox, nvml, 3, at=t0 + 30 * MIN)["warned"] == [job.pk]
    [warning] = notices(job, "idle_warning")
    assert (
        "below 10% utilization for 30 min" in warning.data["reason"]
        and "stopped in 15 min" in warning.data["reason"]
    )
    page = Client()
    page.force_login(alice)
    assert b'id="idle-watch"' in page.get(f"/jobs/{job.pk}/").content  # its page says so
    assert check(gpubox, nvml, 3, at=t0 + 44 * MIN) == {"warned": [], "stopped": [], "reported": []}
    assert check(gpubox, nvml, 3, at=t0 + 45 * MIN)["stopped"] == [job.pk]
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.stop_request == StopRequest.IDLE  # its executor stops it
    assert job.stop_reason.startswith("idle: its GPUs have been below 10% utilization for 45 min")
    assert (
        check(gpubox, nvml, 3, at=t0 + 50 * MIN)["stopped"] == [] and len(notices(job, "idle_warning")) == 1
    )


def test_a_single_busy_reading_resets_the_idle_clock_and_the_warning(alice, nvml, gpubox, policy):
    job = running(alice, gpu_count=2)
    t0 = timezone.now()
    check(gpubox, nvml, 0, 0, at=t0)
    check(gpubox, nvml, 0, 50, at=t0 + 20 * MIN)  # one of its two GPUs is busy once
    assert not IdleWatch.objects.exists()
    check(gpubox, nvml, 0, 0, at=t0 + 35 * MIN)
    assert check(gpubox, nvml, 0, 0, at=t0 + 60 * MIN)["warned"] == []  # idle 25 min since the reset
    assert check(gpubox, nvml, 0, 0, at=t0 + 65 * MIN)["warned"] == [job.pk]
    check(gpubox, nvml, 95, 0, at=t0 + 70 * MIN)  # busy again after the warning: no stop at its grace
    assert check(gpubox, nvml, 0, 0, at=t0 + 80 * MIN) == {"warned": [], "stopped": [], "reported": []}
    job.refresh_from_db()
    assert job.stop_request == "" and IdleWatch.objects.get(job=job).warned_at is None


def test_report_mode_reports_once_and_never_stops(alice, nvml, gpubox, policy):
    set_policy(PolicyType.IDLE_RECLAIM, enabled=True, config={**policy.config, "action": "report"})
    job = running(alice)
    t0 = timezone.now()
    check(gpubox, nvml, 0, at=t0)
    assert check(gpubox, nvml, 0, at=t0 + 30 * MIN)["warned"] == [job.pk]
    assert "reported to the admins in 15 min" in notices(job, "idle_warning")[0].data["reason"]
    assert check(gpubox, nvml, 0, at=t0 + 45 * MIN)["reported"] == [job.pk]
    assert check(gpubox, nvml, 0, at=t0 + 90 * MIN)["reported"] == []
    job.refresh_from_db()
    assert job.status == Status.RUNNING and job.stop_request == ""
    [report] = notices(job, "idle_report")
    assert "reported only" in report.data["reason"]


def test_jobs_of_a_template_that_allows_idle_are_never_watched(alice, nvml, gpubox, policy):
    template = JobTemplate.objects.create(name="notebook", argv_template=["/bin/sleep", "1"], allow_idle=True)
    job = running(alice, template=template)
    t0 = timezone.now()
    for minutes in (0, 30, 45, 600):
        assert check(gpubox, nvml, 0, at=t0 + minutes * MIN) == {"warned": [], "stopped": [], "reported": []}
    assert not IdleWatch.objects.exists() and not notices(job, "idle_warning")


def test_gpus_without_a_utilization_reading_are_never_judged_idle(alice, node, policy):
    job = running(alice)  # the declared (simulated) GPUs of `node` have no readings
    t0 = timezone.now()
    node_refresh_inventory(node=node)
    for minutes in (0, 60, 120):
        reclaim.idle_check(node=node, now=t0 + minutes * MIN)
    assert not IdleWatch.objects.exists() and Job.objects.get(pk=job.pk).stop_request == ""


def test_switching_the_policy_off_forgets_what_it_watched(alice, nvml, gpubox, policy):
    running(alice)
    check(gpubox, nvml, 0, at=timezone.now())
    assert IdleWatch.objects.count() == 1
    set_policy(PolicyType.IDLE_RECLAIM, enabled=False)
    check(gpubox, nvml, 0, at=timezone.now())
    assert not IdleWatch.objects.exists()


def test_only_admins_may_let_a_templates_jobs_idle(db, root):
    JobTemplate.objects.create(name="notebook", argv_template=["/bin/sleep", "1"])
    lead = api_for(make_user("lena", level=Level.LEAD))
    assert lead.patch("/api/v1/templates/notebook", {"allow_idle": True}, format="json").status_code == 403
    changed = api_for(root).patch("/api/v1/templates/notebook", {"allow_idle": True}, format="json")
    assert changed.status_code == 200 and changed.json()["allow_idle"] is True
    assert JobTemplate.objects.get(name="notebook").allow_idle


def test_a_bad_idle_reclaim_config_names_the_field(db):
    with pytest.raises(ValidationError, match="action"):
        validate_config(PolicyType.IDLE_RECLAIM, {"action": "kill"})
    with pytest.raises(ValidationError, match="utilization_percent"):
        validate_config(PolicyType.IDLE_RECLAIM, {"utilization_percent": 150})


@pytest.mark.django_db(transaction=True)
def test_an_idle_job_is_stopped_by_its_executor_and_ends_cancelled_for_idle(alice, node, policy, settings):
    settings.GPUQ_KILL_GRACE_SECONDS = 1.0
    job = dispatch(make_job(alice, argv=["sleep", "600"]))
    thread, result = run_in_thread(job)
    wait_for(lambda: running_attempt(job.pk), message="the job to run")
    idle = [
        GpuInfo(i, f"SIM-testnode-{i}", "Simulated GPU", 24576, True, utilization_percent=0) for i in (0, 1)
    ]
    t0 = timezone.now()
    for minutes in (0, 30, 45):
        node_refresh_gpus(node=node, gpus=idle, our_pids=set())
        reclaim.idle_check(node=node, now=t0 + minutes * MIN)
    thread.join(timeout=30)
    assert result == ["cancelled"]
    job.refresh_from_db()
    assert (job.status, job.stop_request, job.error) == (Status.CANCELLED, StopRequest.IDLE, IDLE_ERROR)
    assert job.transitions.last().reason.startswith("idle: its GPUs have been below 10%")
    api = api_for(alice).get(f"/api/v1/jobs/{job.pk}").json()
    assert (api["status"], api["stop_request"], api["error"]) == ("cancelled", "idle", IDLE_ERROR)
    page = Client()
    page.force_login(alice)
    assert b'id="idle-stop"' in page.get(f"/jobs/{job.pk}/").content
    reclaim.idle_check(node=node)
    assert not IdleWatch.objects.exists()  # the watch of a job no longer running is removed
