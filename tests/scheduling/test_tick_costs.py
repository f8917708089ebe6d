"""What a tick reads and writes when the queue is large and nothing changed (issue 11: submissions stay
flat as the queue grows, so the tick the web process runs after them must cost little)."""

from django.db import connection
from django.test.utils import CaptureQueriesContext

from gpus.placement import Needs
from scheduling import selectors
from scheduling.models import Event, Job, WaitReason
from scheduling.states import Status
from scheduling.tick import tick
from tests.factories import make_job


def _reason_updates(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].startswith('UPDATE "scheduling_job" SET "wait_reason"')]


def test_a_tick_that_changes_no_reason_writes_no_job(alice, node):
    for _ in range(4):
        make_job(alice, gpu_count=2)  # two GPUs on the node: one starts, three wait
    tick()
    assert Job.objects.filter(status=Status.PENDING).exclude(wait_reason="").count() == 3
    events = Event.objects.count()
    with CaptureQueriesContext(connection) as queries:
        tick()
    assert _reason_updates(queries.captured_queries) == []
    assert Event.objects.count() == events


def test_a_reason_that_changed_is_written_and_told(alice, node):
    for _ in range(3):
        make_job(alice, gpu_count=2)
    tick()
    waiting = list(Job.objects.filter(status=Status.PENDING).order_by("pk"))
    expected = (waiting[0].wait_reason, waiting[0].wait_detail)
    Job.objects.filter(pk=waiting[0].pk).update(wait_reason=WaitReason.NONE, wait_detail="")
    events = Event.objects.filter(kind=Event.Kind.QUEUE).count()
    with CaptureQueriesContext(connection) as queries:
        tick()
    assert len(_reason_updates(queries.captured_queries)) == 1
    waiting[0].refresh_from_db()
    assert (waiting[0].wait_reason, waiting[0].wait_detail) == expected
    assert Event.objects.filter(kind=Event.Kind.QUEUE).count() == events + 1


def test_the_snapshot_reads_each_jobs_own_json_fields(alice, node):
    plain = make_job(alice)
    picky = make_job(
        alice,
        resources=["model:b", "model:a"],
        device_ids=[1],
        node_labels={"zone": "b*", "gpu": "a100*"},
        min_gpu_memory_mb=20000,
        gpu_model="A100*",
    )
    same_labels = make_job(alice, node_labels={"gpu": "a100*", "zone": "b*"})
    by_id = {p.id: p for p in selectors.snapshot().pending}
    assert by_id[plain.pk].resources == () and by_id[plain.pk].needs == Needs()
    assert by_id[picky.pk].resources == ("model:b", "model:a")
    assert by_id[picky.pk].needs == Needs.of(20000, "A100*", [1], {"zone": "b*", "gpu": "a100*"}, "auto")
    assert by_id[same_labels.pk].needs.labels == (("gpu", "a100*"), ("zone", "b*"))
