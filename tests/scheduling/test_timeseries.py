"""A job's charts as data (scheduling.timeseries): points recorded where progress and GPU readings arrive,
each series bounded (thinned evenly over its span), at most so many series per attempt, removed with the
job by retention."""

from datetime import UTC, datetime, timedelta

import pytest

from gpus.inventory import GpuInfo
from gpus.models import Allocation, Gpu
from gpus.services import node_refresh_gpus
from scheduling import retention, timeseries
from scheduling.models import Job, MetricPoint
from scheduling.states import Status
from tests.conftest import job_writable, wait_for
from tests.factories import make_job
from tests.scheduling.helpers import PY, dispatch, run_in_thread

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def points(job, series: str, attempt: int = 1) -> list[float]:
    rows = MetricPoint.objects.filter(job=job, attempt=attempt, series=series).order_by("at", "id")
    return list(rows.values_list("value", flat=True))


def report(job, progress: dict, *, at=T0, known=None, attempt: int = 1) -> int:
    return timeseries.record_progress(
        job_id=job.pk, attempt=attempt, progress=progress, at=at, known=set() if known is None else known
    )


def test_the_numbers_of_a_progress_report_become_series():
    progress = {
        "loss": 0.5,
        "step": 10,
        "eval": {"accuracy": 0.9, "note": "x"},
        "message": "epoch 1",
        "done": True,
        "nan": float("nan"),
        "huge": 10**400,
        "x" * 101: 1,
    }
    assert timeseries.progress_numbers(progress) == {"loss": 0.5, "step": 10.0, "eval.accuracy": 0.9}
    assert timeseries.progress_numbers({"rejected": "too big", "loss": 1}) == {}
    assert timeseries.progress_numbers(None) == {}


def test_each_report_is_one_point_per_number(alice, django_assert_max_num_queries):
    job = make_job(alice, status=Status.RUNNING)
    known: set[str] = set()
    with django_assert_max_num_queries(2):  # one bulk insert, one count of the series' sizes
        assert report(job, {"loss": 2.0, "accuracy": 0.1, "message": "start"}, known=known) == 2
    report(job, {"loss": 1.0, "accuracy": 0.4}, at=T0 + timedelta(seconds=1), known=known)
    assert points(job, "loss") == [2.0, 1.0] and points(job, "accuracy") == [0.1, 0.4]
    assert known == {"loss", "accuracy"}


def test_a_job_cannot_grow_its_series_past_the_setting(alice, settings):
    settings.GPUQ_JOB_METRICS_MAX_SERIES = 3
    job = make_job(alice, status=Status.RUNNING)
    known: set[str] = set()
    for i in range(5):
        report(job, {f"name{i}": i, "loss": 1.0}, at=T0 + timedelta(seconds=i), known=known)
    assert set(MetricPoint.objects.filter(job=job).values_list("series", flat=True)) == {
        "name0",
        "loss",
        "name1",
    }
    assert len(points(job, "loss")) == 5  # a known series keeps growing (within its own bound)


def test_a_full_series_is_thinned_evenly_over_its_whole_span(alice, settings):
    settings.GPUQ_JOB_METRICS_MAX_POINTS = 20
    job = make_job(alice, status=Status.RUNNING)
    known: set[str] = set()
    for i in range(200):
        report(job, {"loss": float(i)}, at=T0 + timedelta(seconds=i), known=known)
        assert MetricPoint.objects.filter(job=job, series="loss").count() <= 20
    kept = points(job, "loss")
    assert kept[0] == 0.0 and kept[-1] == 199.0  # the curve's start and its newest point stay
    gaps = [b - a for a, b in zip(kept, kept[1:], strict=False)]
    assert max(gaps) <= 4 * (199 / len(kept))  # no stretch of the span was left bare


def test_even_thinning_keeps_at_most_the_asked_number_spread_over_the_span():
    times = [float(t) for t in range(100)] + [99 + t / 100 for t in range(1, 101)]  # dense at the end
    chosen = timeseries.evenly(times, 11)
    assert len(chosen) <= 11 and chosen[0] == 0 and chosen[-1] == len(times) - 1
    assert [times[i] for i in chosen] == [*range(0, 100, 10), 100.0]
    assert timeseries.evenly([1.0, 2.0], 5) == [0, 1]
    assert timeseries.evenly([5.0] * 10, 4) == [0, 9]  # no span: the first and the last


def test_gpu_readings_become_points_of_the_attempt_that_holds_the_gpu(alice, node):
    job = make_job(alice, status=Status.RUNNING, attempt=2)
    Allocation.objects.create(gpu=Gpu.objects.get(node=node, index=1), job=job, attempt=2)
    gone = make_job(alice, status=Status.COMPLETED)
    Allocation.objects.create(gpu=Gpu.objects.get(node=node, index=0), job=gone, attempt=1, released_at=T0)
    readings = [
        GpuInfo(
            i, f"GPU-{i}", "fake", 24576, False, memory_used_mb=1000 * (i + 1), utilization_percent=40 + i
        )
        for i in (0, 1)
    ]
    node_refresh_gpus(node=node, gpus=readings, our_pids=set())
    assert points(job, "gpu1.utilization_percent", attempt=2) == [41.0]
    assert points(job, "gpu1.memory_used_mb", attempt=2) == [2000.0]
    assert not MetricPoint.objects.filter(job=gone).exists()  # a released GPU is no longer the job's


def test_declared_gpus_without_readings_cost_no_query(alice, node, django_assert_num_queries):
    job = make_job(alice, status=Status.RUNNING)
    Allocation.objects.create(gpu=Gpu.objects.get(node=node, index=0), job=job, attempt=1)
    declared = {0: GpuInfo(0, "", "declared", 24576, True)}
    with django_assert_num_queries(0):
        assert timeseries.record_gpu_readings(node_id=node.pk, readings=declared, at=T0) == 0


@pytest.mark.django_db(transaction=True)
def test_a_job_reporting_progress_gets_its_points_live_and_at_its_end(alice, node, settings, tmp_path):
    """The executor records a point where it stores the job's progress: at a heartbeat while the job
    runs (real process, in this process's executor), and the last report when the job ends."""
    settings.GPUQ_HEARTBEAT_SECONDS = 0.05
    go = job_writable(tmp_path / "sync") / "go"
    code = (
        "import json, os, time; p = os.environ['GPUQ_PROGRESS_FILE']\n"
        "open(p, 'w').write(json.dumps({'loss': 2.0, 'message': 'first'}))\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.02)\n"
        "open(p, 'w').write(json.dumps({'loss': 0.5, 'fraction': 1.0}))\n"
    )
    job = dispatch(make_job(alice, argv=[PY, "-c", code]))
    thread, result = run_in_thread(job)
    wait_for(lambda: points(job, "loss") == [2.0], timeout=30, message="the first point while running")
    go.write_text("go")
    thread.join(60)
    assert result == ["completed"]
    assert points(job, "loss") == [2.0, 0.5] and points(job, "fraction") == [1.0]


def test_retention_removes_the_points_with_the_job(alice):
    job = make_job(alice, status=Status.COMPLETED)
    kept = make_job(alice, status=Status.RUNNING)
    for one in (job, kept):
        report(one, {"loss": 1.0})
    Job.objects.filter(pk=job.pk).update(finished_at=T0)
    removed = retention.jobs_cleanup(finished_before=T0 + timedelta(days=1), now=T0 + timedelta(days=31))
    assert removed.jobs == 1 and removed.metric_points == 1
    assert not MetricPoint.objects.filter(job_id=job.pk).exists()
    assert points(kept, "loss") == [1.0]
