"""Retention (scheduling.retention, scheduling.housekeeping) with a fake clock (`now` passed in): old
finished jobs go with everything that belongs to them, their history stays in the archive, and nothing
active is touched."""

from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_q.models import Schedule, Task

from accounts.models import ApiToken
from gpus.models import Allocation, Gpu, NodeStatus
from scheduling import archive, housekeeping, retention
from scheduling.models import (
    Attempt,
    Event,
    IdempotencyKey,
    Job,
    JobAudit,
    JobStateTransition,
    LogChunk,
    PolicyType,
)
from scheduling.policies import set_policy
from scheduling.states import Status
from tests.conftest import api_for
from tests.factories import make_job

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # when the old jobs finished
LATER = T0 + timedelta(days=31)  # the fake clock: 31 days on


def job_with_everything(owner, node, settings, *, status=Status.COMPLETED, finished_at=T0, gpu=0) -> Job:
    """A job as one that ran leaves it: transitions, audit, log chunk, events, attempt, allocation,
    idempotency key, and its log file, working folder and checkpoint folder on disk."""
    finished = finished_at if status in (Status.COMPLETED, Status.FAILED, Status.CANCELLED) else None
    job = make_job(owner, status=status, name=f"job-{status}", submitted_at=T0 - timedelta(hours=2))
    Job.objects.filter(pk=job.pk).update(finished_at=finished, updated_at=finished_at)
    for source, target in (
        ("", Status.PENDING),
        (Status.PENDING, Status.DISPATCHED),
        (Status.DISPATCHED, status),
    ):
        JobStateTransition.objects.create(job=job, from_status=source, to_status=target, at=T0, reason="r")
    JobAudit.objects.create(job=job, by=owner, action="priority", detail="10 → 20", at=T0)
    LogChunk.objects.create(job=job, attempt=1, offset=0, size=5, data=b"hello")
    Event.objects.create(kind=Event.Kind.JOB, job_id=job.pk, at=T0, data={"id": job.pk})
    Attempt.objects.create(job=job, number=1, lease_token="t" * 32, ended_at=finished)
    Allocation.objects.create(
        gpu=Gpu.objects.get(node=node, index=gpu), job=job, attempt=1, released_at=finished
    )
    IdempotencyKey.objects.create(user=owner, key=f"k{job.pk}", request_hash="h", job=job, created_at=T0)
    settings.GPUQ_LOG_DIR.mkdir(parents=True, exist_ok=True)
    (settings.GPUQ_LOG_DIR / f"job-{job.pk}.log").write_text("hello")
    for root in (settings.GPUQ_JOBS_DIR, settings.GPUQ_CHECKPOINT_ROOT):
        (root / str(job.pk) / "step-1").mkdir(parents=True)
        (root / str(job.pk) / "step-1" / "weights.bin").write_bytes(b"w")
    return job


def belongings(job_id: int, settings) -> dict:
    return {
        "job": Job.objects.filter(pk=job_id).count(),
        "transitions": JobStateTransition.objects.filter(job_id=job_id).count(),
        "audits": JobAudit.objects.filter(job_id=job_id).count(),
        "log_chunks": LogChunk.objects.filter(job_id=job_id).count(),
        "events": Event.objects.filter(job_id=job_id).count(),
        "attempts": Attempt.objects.filter(job_id=job_id).count(),
        "allocations": Allocation.objects.filter(job_id=job_id).count(),
        "keys": IdempotencyKey.objects.filter(job_id=job_id).count(),
        "log": (settings.GPUQ_LOG_DIR / f"job-{job_id}.log").exists(),
        "folder": (settings.GPUQ_JOBS_DIR / str(job_id)).exists(),
        "checkpoints": (settings.GPUQ_CHECKPOINT_ROOT / str(job_id)).exists(),
    }


GONE = dict.fromkeys(
    ["job", "transitions", "audits", "log_chunks", "events", "attempts", "allocations", "keys"], 0
)
GONE |= dict.fromkeys(["log", "folder", "checkpoints"], False)


def cleanup_30_days(**kwargs) -> retention.Removed:
    return retention.jobs_cleanup(finished_before=LATER - timedelta(days=30), now=LATER, **kwargs)


def archived() -> list[dict]:
    return list(archive.read(archive.path_for(LATER)))


def test_old_finished_jobs_go_with_all_that_belongs_to_them(alice, node, settings):
    done = job_with_everything(alice, node, settings)
    failed = job_with_everything(alice, node, settings, status=Status.FAILED, gpu=1)
    removed = cleanup_30_days()
    assert removed.jobs == 2 and removed.transitions == 6 and removed.files == 6
    for job in (done, failed):
        assert belongings(job.pk, settings) == GONE


def test_the_archive_holds_their_transitions_and_audit(alice, node, settings):
    job = job_with_everything(alice, node, settings)
    cleanup_30_days()
    lines = archived()
    steps = [(line["from"], line["to"]) for line in lines if line["kind"] == "transition"]
    assert steps == [("", "pending"), ("pending", "dispatched"), ("dispatched", "completed")]
    assert {line["job"] for line in lines} == {job.pk}
    assert {line["owner"] for line in lines} == {"alice"}
    assert [line["action"] for line in lines if line["kind"] == "audit"] == ["priority"]
    assert lines[0]["at"] == T0.isoformat()


def test_active_and_recent_jobs_and_their_files_are_untouched(alice, node, settings):
    running = job_with_everything(alice, node, settings, status=Status.RUNNING)
    waiting = make_job(alice, status=Status.PENDING, submitted_at=T0 - timedelta(days=90))
    Job.objects.filter(pk=waiting.pk).update(updated_at=T0 - timedelta(days=90))
    recent = job_with_everything(alice, node, settings, finished_at=LATER - timedelta(days=29), gpu=1)
    kept = {pk: belongings(pk, settings) for pk in (running.pk, recent.pk)}
    assert cleanup_30_days().jobs == 0
    assert {pk: belongings(pk, settings) for pk in kept} == kept
    assert Job.objects.filter(pk=waiting.pk).exists()
    assert not archive.path_for(LATER).exists()


def test_a_finished_job_that_an_active_one_depends_on_stays(alice, node, settings):
    parent = job_with_everything(alice, node, settings)
    child = make_job(alice, status=Status.PENDING)
    child.depends_on.add(parent)
    assert cleanup_30_days().jobs == 0
    Job.objects.filter(pk=child.pk).update(status=Status.CANCELLED, finished_at=T0)
    assert cleanup_30_days().jobs == 2


def test_many_jobs_go_in_small_batches_and_all_are_archived(alice, node, settings):
    settings.GPUQ_RETENTION_BATCH = 2
    jobs = [job_with_everything(alice, node, settings, gpu=i % 2) for i in range(5)]
    assert cleanup_30_days().jobs == 5
    assert {line["job"] for line in archived()} == {job.pk for job in jobs}
    assert len(archived()) == 5 * 4  # three transitions and one audit entry each, in one readable file


def test_the_cleanup_api_says_what_it_removed(alice, root, node, settings):
    job = job_with_everything(alice, node, settings, finished_at=datetime.now(UTC) - timedelta(days=31))
    recent = job_with_everything(alice, node, settings, finished_at=datetime.now(UTC) - timedelta(days=29))
    answer = api_for(root).post("/api/v1/queue/cleanup?days=30")
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert (body["success"], body["deleted"], body["days"]) == (True, 1, 30)
    assert body["removed"]["transitions"] == 3 and body["removed"]["log_chunks"] == 1
    assert belongings(job.pk, settings) == GONE
    assert Job.objects.filter(pk=recent.pk).exists()


@pytest.mark.parametrize("days", ["0", "366", "ten", "-1", ""])
def test_a_bad_number_of_days_is_a_400_naming_it(root, days):
    answer = api_for(root).post(f"/api/v1/queue/cleanup?days={days}")
    assert answer.status_code == 400
    assert "days" in answer.json()


def test_clear_completed_removes_only_the_users_finished_jobs(alice, bob, node, settings):
    today = datetime.now(UTC) - timedelta(minutes=1)
    mine = job_with_everything(alice, node, settings, finished_at=today)
    running = make_job(alice, status=Status.RUNNING)
    bobs = make_job(bob, status=Status.COMPLETED, finished_at=today)
    client = Client()
    client.force_login(alice)
    page = client.get("/me/").content.decode()
    assert 'data-action="clear-completed"' in page
    response = client.post("/me/clear", follow=True)
    assert "Cleared 1 finished job(s)." in response.content.decode()
    assert belongings(mine.pk, settings) == GONE
    assert set(Job.objects.values_list("pk", flat=True)) == {running.pk, bobs.pk}


@pytest.mark.django_db(transaction=True)  # events get their commit position (seq) only when they commit
def test_the_daily_run_applies_the_policy_and_prunes_the_other_tables(alice, node, settings):
    settings.GPUQ_EVENT_WINDOW_HOURS = 24
    old = job_with_everything(alice, node, settings)
    no_policy = housekeeping.retention_run(now=LATER)
    assert "jobs" not in no_policy and Job.objects.filter(pk=old.pk).exists()  # off: no job is removed
    set_policy(PolicyType.RETENTION, enabled=True, config={"days": 30})
    stale_event = Event.objects.create(kind=Event.Kind.QUEUE, at=LATER - timedelta(hours=25))
    fresh_event = Event.objects.create(kind=Event.Kind.QUEUE, at=LATER - timedelta(hours=1))
    expired, _ = ApiToken.issue(user=alice, now=T0 - timedelta(days=1), expires_at=T0)
    valid, _ = ApiToken.issue(user=alice, now=LATER, expires_at=LATER + timedelta(days=1))
    Task.objects.create(id="a" * 32, name="old", func="f", started=T0, stopped=T0, success=True)
    report = housekeeping.retention_run(now=LATER)
    assert report["jobs"]["jobs"] == 1 and not Job.objects.filter(pk=old.pk).exists()
    assert list(Event.objects.values_list("kind", flat=True)) == [Event.Kind.PRUNED, Event.Kind.QUEUE]
    assert [stale_event.pk, fresh_event.pk] == list(Event.objects.values_list("pk", flat=True))
    assert list(ApiToken.objects.values_list("pk", flat=True)) == [valid.pk]
    assert report["task_results"] == 1 and not Task.objects.exists()


@pytest.mark.django_db(transaction=True)  # events get their commit position (seq) only when they commit
def test_event_pruning_leaves_a_marker_where_it_ended(settings):
    events = [Event.objects.create(kind=Event.Kind.JOB, job_id=7, at=T0, data={"id": 7}) for _ in range(3)]
    fresh = Event.objects.create(kind=Event.Kind.QUEUE, at=LATER)
    assert housekeeping.events_prune(now=LATER) == 3
    marker = Event.objects.get(pk=events[-1].pk)
    assert (marker.kind, marker.job_id, marker.data) == (Event.Kind.PRUNED, None, {})
    assert list(Event.objects.values_list("pk", flat=True)) == [marker.pk, fresh.pk]
    assert housekeeping.events_prune(now=LATER) == 0  # the marker is not pruned again


def test_the_schedule_is_made_once_and_taken_over_from_an_offline_holder(node):
    first = housekeeping.ensure_schedule(cluster=node.queue_name, now=T0)
    assert (first.func, first.schedule_type, first.cluster) == (
        housekeeping.TASK,
        Schedule.DAILY,
        node.queue_name,
    )
    assert housekeeping.ensure_schedule(cluster="node-other", now=T0).cluster == node.queue_name  # online
    node.status = NodeStatus.OFFLINE
    node.save()
    assert housekeeping.ensure_schedule(cluster="node-other", now=T0).cluster == "node-other"
    assert Schedule.objects.filter(name=housekeeping.SCHEDULE_NAME).count() == 1


def test_a_node_removes_the_folders_of_jobs_removed_elsewhere(alice, node, settings):
    gone = job_with_everything(alice, node, settings)
    kept = job_with_everything(alice, node, settings, gpu=1)
    newest = make_job(alice)
    Job.objects.filter(pk=gone.pk).delete()  # as a cleanup on another machine leaves it
    (settings.GPUQ_JOBS_DIR / "notes").mkdir()  # not a job's: left alone
    (settings.GPUQ_JOBS_DIR / str(newest.pk + 5)).mkdir()  # above the highest id: not judged
    assert retention.orphan_files_sweep() == 3
    assert {
        k: v for k, v in belongings(gone.pk, settings).items() if k in ("log", "folder", "checkpoints")
    } == {
        "log": False,
        "folder": False,
        "checkpoints": False,
    }
    assert belongings(kept.pk, settings)["folder"] and belongings(kept.pk, settings)["checkpoints"]
    assert (settings.GPUQ_JOBS_DIR / "notes").exists() and (
        settings.GPUQ_JOBS_DIR / str(newest.pk + 5)
    ).exists()
