"""Inventory refresh: readings stored, GPUs gone or failing marked unhealthy (and back), GPUs used by a
process that is not a gpuq job busy and not given out; our own jobs' processes never count as foreign."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gpus.inventory import GpuInfo
from gpus.models import Gpu
from gpus.procs import our_pids
from gpus.services import node_refresh_gpus, node_refresh_inventory, node_register
from scheduling import procs
from scheduling.models import Attempt, Job
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for, wait_for
from tests.e2e.conftest import start_node  # noqa: F401 - the fixture, for the node-process test
from tests.factories import make_job
from tests.gpus.test_inventory import NVMLError_LibraryNotFound, NVMLError_Unknown, fake_pynvml

GB = 1024**3


def info(index: int, uuid: str | None = None, **readings) -> GpuInfo:
    return GpuInfo(
        index=index,
        uuid=uuid or f"GPU-{index}",
        model_name="NVIDIA A100-SXM4-80GB",
        memory_mb=81920,
        simulated=False,
        **readings,
    )


@pytest.fixture
def gpubox(db):
    """A node with two real (NVML) GPUs."""
    return node_register(name="gpubox", backend="nvml", gpus=[info(0), info(1)], labels={}, boot_id="")


def gpu(node, index: int) -> Gpu:
    return Gpu.objects.get(node=node, index=index)


def status(job: Job) -> str:
    job.refresh_from_db()
    return job.status


def test_readings_are_stored_for_each_reported_gpu(gpubox):
    node_refresh_gpus(
        node=gpubox,
        gpus=[info(0, memory_used_mb=1024, utilization_percent=55, temperature_c=61), info(1)],
        our_pids=set(),
    )
    first, second = gpu(gpubox, 0), gpu(gpubox, 1)
    assert (first.memory_used_mb, first.utilization_percent, first.temperature_c) == (1024, 55, 61)
    assert first.readings_at is not None and first.healthy and not first.busy_foreign
    assert (second.memory_used_mb, second.utilization_percent, second.temperature_c) == (None, None, None)


def test_a_gpu_that_disappears_is_unhealthy_and_not_given_out_until_it_comes_back(alice, gpubox):
    node_refresh_gpus(node=gpubox, gpus=[info(0)], our_pids=set())
    lost = gpu(gpubox, 1)
    assert (lost.healthy, lost.unhealthy_reason) == (False, "no longer reported by nvml")
    first, second = make_job(alice), make_job(alice)
    tick()
    assert (status(first), status(second)) == (Status.DISPATCHED, Status.PENDING)
    assert first.gpu_indices == [0] and second.wait_reason == "resources"

    node_refresh_gpus(node=gpubox, gpus=[info(0), info(1)], our_pids=set())
    assert (gpu(gpubox, 1).healthy, gpu(gpubox, 1).unhealthy_reason) == (True, "")
    tick()
    assert status(second) == Status.DISPATCHED and second.gpu_indices == [1]


def test_a_gpu_read_with_an_error_is_unhealthy_and_keeps_what_was_known(alice, gpubox):
    broken = GpuInfo(
        index=1, uuid="", model_name="", memory_mb=0, simulated=False, error="NVML error: Unknown"
    )
    node_refresh_gpus(node=gpubox, gpus=[info(0), broken], our_pids=set())
    row = gpu(gpubox, 1)
    assert (row.healthy, row.unhealthy_reason) == (False, "NVML error: Unknown")
    assert (row.uuid, row.memory_mb) == ("GPU-1", 81920)
    job = make_job(alice, device_ids=[1])
    tick()
    assert status(job) == Status.PENDING


def test_a_new_uuid_at_an_index_replaces_the_old_one(gpubox):
    node_refresh_gpus(node=gpubox, gpus=[info(0), info(1, uuid="GPU-replaced")], our_pids=set())
    assert gpu(gpubox, 1).uuid == "GPU-replaced" and gpu(gpubox, 1).healthy


def test_a_gpu_used_by_a_foreign_process_is_busy_and_not_given_out(alice, gpubox):
    node_refresh_gpus(node=gpubox, gpus=[info(0, process_pids=(4242, 4243)), info(1)], our_pids={4243})
    busy = gpu(gpubox, 0)
    assert busy.foreign_pids == [4242] and busy.busy_foreign and busy.healthy
    first, second = make_job(alice), make_job(alice)
    tick()
    assert (status(first), status(second)) == (Status.DISPATCHED, Status.PENDING)
    assert first.gpu_indices == [1]

    node_refresh_gpus(node=gpubox, gpus=[info(0), info(1)], our_pids=set())  # the process is gone
    assert not gpu(gpubox, 0).busy_foreign
    tick()
    assert status(second) == Status.DISPATCHED and second.gpu_indices == [0]


def test_an_admin_disabled_gpu_stays_out_until_the_node_registers_again(gpubox):
    Gpu.objects.filter(node=gpubox, index=1).update(healthy=False)  # by hand, no reason
    node_refresh_gpus(node=gpubox, gpus=[info(0), info(1, temperature_c=50)], our_pids=set())
    assert (gpu(gpubox, 1).healthy, gpu(gpubox, 1).temperature_c) == (False, 50)
    node_register(name="gpubox", backend="nvml", gpus=[info(0), info(1)], labels={}, boot_id="")
    assert gpu(gpubox, 1).healthy


def _process_table() -> dict[int, tuple[int, int, int]]:
    """pid -> (parent, process group, session) of every live process."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] not in ("Z", "X"):
                table[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[3]))
    return table


def _job_descendants(leader: int) -> dict[str, int] | None:
    """The child, orphaned grandchild and own-session child the test job below starts, once all run."""
    found = {}
    for pid, (parent, group, session) in _process_table().items():
        if pid == leader:
            continue
        if parent == leader and group == leader:
            found["child"] = pid
        elif group == leader and parent != leader:
            found["orphan"] = pid  # its parent exited: only its process group says it is the job's
        elif parent == leader and session == pid:
            found["own_session"] = pid  # made its own session: only its parent says it is the job's
    return found if len(found) == 3 else None


@pytest.fixture
def processes():
    started: list[subprocess.Popen] = []

    def start(argv):
        child = subprocess.Popen(argv, start_new_session=True)
        started.append(child)
        return child

    yield start
    for child in started:
        procs.signal_group(child.pid, 9)
        child.wait()


def running_job_for(owner, node, child: subprocess.Popen, **fields) -> Job:
    started = fields.pop("pid_start_time", procs.start_time(child.pid))
    job = make_job(owner, status=Status.RUNNING, node=node, **fields)
    Attempt.objects.create(
        job=job,
        number=job.attempt,
        node=node,
        lease_token="t",
        pid=child.pid,
        pid_start_time=started,
        boot_id=procs.boot_id(),
    )
    return job


def test_processes_of_our_running_jobs_and_their_children_are_not_foreign(
    alice, gpubox, processes, monkeypatch
):
    # A job as the executor runs it: the leader of its own session and process group. Its descendants:
    # a child, a grandchild whose parent exited, and a child that made a session of its own.
    job_process = processes(["sh", "-c", "sleep 600 & (sleep 600 &); setsid sleep 600 & wait"])
    running_job_for(alice, gpubox, job_process)
    family = wait_for(lambda: _job_descendants(job_process.pid), message="the job's descendants")
    try:
        stranger = processes(["sleep", "600"])  # not a gpuq job
        devices = [
            {"uuid": "GPU-0", "total": 80 * GB, "compute": [job_process.pid, family["child"]]},
            {"uuid": "GPU-1", "total": 80 * GB, "compute": [stranger.pid, family["orphan"]]},
            {"uuid": "GPU-2", "total": 80 * GB, "graphics": [family["own_session"]]},
        ]
        monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices))
        node_refresh_inventory(node=gpubox)
        assert [(g.foreign_pids, g.busy_foreign) for g in Gpu.objects.filter(node=gpubox)] == [
            ([], False),
            ([stranger.pid], True),
            ([], False),
        ]
    finally:
        os.kill(family["own_session"], signal.SIGKILL)  # not in the job's group: the fixture misses it


def test_a_job_pid_counts_only_while_it_names_the_jobs_process(alice, gpubox, processes):
    bystander = processes(["sleep", "600"])
    # The job recorded this pid with another start time: the number now belongs to someone else.
    running_job_for(alice, gpubox, bystander, pid_start_time="1")
    assert our_pids(gpubox, [bystander.pid]) == set()
    finished = processes(["sleep", "600"])
    job = running_job_for(alice, gpubox, finished)
    assert our_pids(gpubox, [finished.pid]) == {finished.pid}
    Job.objects.filter(pk=job.pk).update(status=Status.COMPLETED)
    assert our_pids(gpubox, [finished.pid]) == set()


def test_a_pid_not_visible_here_is_foreign(alice, gpubox, processes):
    job_process = processes(["sleep", "600"])
    running_job_for(alice, gpubox, job_process)
    invisible = 2**22 + 12345  # above pid_max's default limit: no such process
    assert our_pids(gpubox, [invisible, job_process.pid]) == {job_process.pid}


def test_when_nvml_stops_answering_every_gpu_is_unhealthy(alice, gpubox, monkeypatch):
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(init_error=NVMLError_LibraryNotFound("gone")))
    node_refresh_inventory(node=gpubox)
    assert [(g.healthy, g.unhealthy_reason) for g in Gpu.objects.filter(node=gpubox)] == [
        (False, "inventory failed: NVML no longer answers (see the log)")
    ] * 2
    job = make_job(alice)
    tick()
    assert status(job) == Status.PENDING

    devices = [
        {"uuid": "GPU-0", "total": 80 * GB},
        {"handle": NVMLError_Unknown("Unknown Error"), "total": 0},
    ]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml(devices))
    node_refresh_inventory(node=gpubox)
    assert [(g.healthy, g.unhealthy_reason) for g in Gpu.objects.filter(node=gpubox)] == [
        (True, ""),
        (False, "NVML error: Unknown Error"),
    ]
    tick()
    assert status(job) == Status.DISPATCHED and job.gpu_indices == [0]


def test_declared_gpus_refresh_without_readings_and_stay_simulated(node, settings):
    settings.GPUQ_DECLARED_GPUS = "2x24GB"
    node_refresh_inventory(node=node)
    for row in Gpu.objects.filter(node=node):
        assert row.healthy and row.simulated and row.readings_at is not None
        assert (row.memory_used_mb, row.utilization_percent, row.temperature_c, row.foreign_pids) == (
            None,
            None,
            None,
            [],
        )


def test_the_api_shows_readings_health_busy_and_simulated(alice, gpubox, node):
    node_refresh_gpus(
        node=gpubox,
        gpus=[info(0, memory_used_mb=2048, utilization_percent=90, temperature_c=70, process_pids=(99,))],
        our_pids=set(),
    )
    body = api_for(alice).get("/api/v1/system/status?include_allocation=true").json()
    by_name = {n["name"]: n for n in body["nodes"]}
    busy, lost = by_name["gpubox"]["gpus"]
    assert (busy["memory_used_mb"], busy["utilization_percent"], busy["temperature_c"]) == (2048, 90, 70)
    assert (busy["busy"], busy["foreign_pids"], busy["healthy"], busy["simulated"]) == (
        True,
        [99],
        True,
        False,
    )
    assert (lost["healthy"], lost["unhealthy_reason"], lost["busy"]) == (
        False,
        "no longer reported by nvml",
        False,
    )
    assert by_name["gpubox"]["simulated"] is False
    simulated = by_name["testnode"]["gpus"][0]
    assert simulated["simulated"] is True and by_name["testnode"]["simulated"] is True
    assert simulated["temperature_c"] is None and simulated["busy"] is False
    assert body["gpu_allocation"]["available_gpus"] == ["testnode:0", "testnode:1"]
    listed = api_for(alice).get("/api/v1/nodes").json()["nodes"]
    assert [g["busy"] for n in listed for g in n["gpus"]] == [True, False, False, False]


@pytest.mark.processes
@pytest.mark.django_db(transaction=True)
def test_a_running_node_reads_its_gpus_again_every_refresh_period(start_node):  # noqa: F811
    start_node(name="refresher", GPUQ_INVENTORY_REFRESH_SECONDS=1)
    # As if the last read had lost GPU 1: the next refresh finds it again and puts it back.
    Gpu.objects.filter(node__name="refresher", index=1).update(
        healthy=False, unhealthy_reason="no longer reported by declared", readings_at=None
    )
    back = wait_for(
        lambda: Gpu.objects.filter(
            node__name="refresher", index=1, healthy=True, readings_at__isnull=False
        ).first(),
        timeout=10,
        message="the refresh to find GPU 1 again",
    )
    assert back.unhealthy_reason == "" and back.simulated


def test_the_admin_lists_readings_busy_health_and_simulated(root, gpubox, node):
    from django.test import Client

    node_refresh_gpus(
        node=gpubox,
        gpus=[info(0, temperature_c=71, utilization_percent=93, process_pids=(99,))],
        our_pids=set(),
    )
    client = Client()
    client.force_login(root)
    page = client.get("/admin/gpus/gpu/").content.decode()
    assert "busy (foreign process)" in page.lower() and "no longer reported by nvml" in page
    assert '<td class="field-temperature_c">71</td>' in page and "(simulated)" in page
    assert "simulated gpus" in client.get("/admin/gpus/node/").content.decode().lower()
    change = client.get(f"/admin/gpus/node/{gpubox.pk}/change/")
    assert change.status_code == 200 and "foreign_pids" in change.content.decode()
