"""Batching (seed 003): jobs of a batchable template with equal key parameters, arriving within the
window, run together in one process on the same GPUs; each member ends by its own result; a failed
batch sends every member back to run alone. Real tick, real executor, real child processes."""

import json
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from gpus.models import Allocation
from scheduling import executor, selectors
from scheduling.models import Attempt, Job, JobTemplate
from scheduling.services import job_cancel, job_submit
from scheduling.states import Status
from scheduling.tick import tick
from tests.scheduling.helpers import PY

# The batch runner: reads the manifest, "infers" each prompt, writes each member's result; a prompt
# "bad" fails alone, a prompt "crash" fails the whole batch.
RUNNER = """
import json, os, sys
manifest = json.load(open(sys.argv[1]))
print("batch", manifest["batch"], "steps", sys.argv[2], "jobs", [j["id"] for j in manifest["jobs"]])
assert os.environ["GPUQ_BATCH_MANIFEST"] == sys.argv[1]
for job in manifest["jobs"]:
    prompt = job["params"]["prompt"]
    if prompt == "crash":
        sys.exit(1)
    result = dict(status="failed", error="bad prompt") if prompt == "bad" else dict(status="completed")
    json.dump(result, open(job["result_file"], "w"))
"""


@pytest.fixture
def infer(db):
    return JobTemplate.objects.create(
        name="infer",
        argv_template=[PY, "-c", "import sys; print('alone', sys.argv[1])", "{prompt}"],
        params_schema={
            "type": "object",
            "properties": {"prompt": {"type": "string"}, "steps": {"type": "integer"}},
            "required": ["prompt", "steps"],
        },
        batchable=True,
        batch_key_params=["steps"],
        batch_window_seconds=60,
        batch_max_size=3,
        batch_argv_template=[PY, "-c", RUNNER, "{manifest}", "{steps}"],
    )


def submit(user, prompt, steps=25):
    template = JobTemplate.objects.get(name="infer")
    return job_submit(user=user, template=template, params={"prompt": prompt, "steps": steps})


def fresh(*jobs):
    return [Job.objects.get(pk=j.pk) for j in jobs]


def later(seconds=61):
    return timezone.now() + timedelta(seconds=seconds)


def test_jobs_collect_for_the_window_then_run_as_one_batch_on_the_same_gpus(alice, node, infer):
    JobTemplate.objects.filter(pk=infer.pk).update(batch_max_size=8)
    jobs = [submit(alice, p) for p in ("a cat", "bad", "a dog")]
    tick()
    assert [(j.status, j.batch_role, j.wait_reason) for j in fresh(*jobs)] == [
        (Status.PENDING, "collecting", "batching")
    ] * 3
    assert "collecting a batch of up to 8 until" in fresh(jobs[0])[0].wait_detail
    assert {e.job.pk for e in selectors.queue().held} == {j.pk for j in jobs}  # shown, with the reason

    tick(now=later())
    leader, bad, dog = fresh(*jobs)
    assert leader.status == bad.status == dog.status == Status.DISPATCHED
    assert (leader.batch_role, bad.batch_leader_id, dog.batch_leader_id) == ("leader", leader.pk, leader.pk)
    assert bad.gpu_indices == dog.gpu_indices == leader.gpu_indices == [0]
    assert list(Allocation.objects.active().values_list("job_id", flat=True)) == [leader.pk]  # one GPU

    assert executor.run_job(leader.pk, leader.lease_token) == "completed"
    leader, bad, dog = fresh(*jobs)
    assert (leader.status, bad.status, dog.status) == (Status.COMPLETED, Status.FAILED, Status.COMPLETED)
    assert bad.error == "bad prompt"
    assert not Allocation.objects.active().exists()
    log = open(leader.log_path).read()
    assert f"batch {leader.pk} steps 25 jobs {[leader.pk, bad.pk, dog.pk]}" in log
    manifest = json.loads((executor.job_dir(leader.pk) / "batch.json").read_text())
    assert [m["params"]["prompt"] for m in manifest["jobs"]] == ["a cat", "bad", "a dog"]
    assert bad.transitions.last().reason == f"batch of job {leader.pk} completed; bad prompt"


def test_a_full_batch_does_not_wait_and_the_rest_forms_the_next(alice, bob, node, infer):
    jobs = [submit(alice, f"p{i}") for i in range(4)]
    tick()
    first = fresh(*jobs)
    # Three make a full batch at once; the fourth keeps collecting for its window.
    assert [j.batch_role for j in first] == ["leader", "member", "member", "collecting"]
    assert first[0].status == Status.DISPATCHED
    # Other key parameters, or another owner, never batch with these.
    other_steps, other_owner = submit(alice, "x", steps=50), submit(bob, "p")
    tick(now=later())
    assert {j.batch_key for j in fresh(jobs[3], other_steps, other_owner)}.__len__() == 3
    # After the window, a group of one simply runs alone with its own argv.
    assert [j.batch_role for j in fresh(jobs[3], other_steps, other_owner)] == ["", "", ""]


def test_a_failed_batch_sends_every_member_back_to_run_alone(alice, node, infer):
    jobs = [submit(alice, p) for p in ("crash", "b", "c")]
    tick(now=later())
    leader = fresh(jobs[0])[0]
    assert executor.run_job(leader.pk, leader.lease_token) == "pending"
    again = fresh(*jobs)
    assert [(j.status, j.attempt, j.batch_role, j.batch_leader_id) for j in again] == [
        (Status.PENDING, 2, "", None)
    ] * 3
    assert again[1].transitions.last().reason == f"batch of job {leader.pk} ended (exit code 1); runs alone"
    assert not Allocation.objects.active().exists()
    tick()  # two GPUs: two of them run alone now, each with its own argv
    running = [j for j in fresh(*jobs) if j.status == Status.DISPATCHED]
    assert len(running) == 2
    for job in running:
        assert executor.run_job(job.pk, job.lease_token) == "completed"
        assert f"alone {job.params['prompt']}" in open(Job.objects.get(pk=job.pk).log_path).read()


def test_a_member_cancelled_before_the_batch_starts_is_left_out(alice, node, infer):
    jobs = [submit(alice, p) for p in ("a", "b", "c")]
    tick(now=later() - timedelta(seconds=2))  # not yet
    job_cancel(job=jobs[1], user=alice)
    tick(now=later())
    leader = fresh(jobs[0])[0]
    executor.run_job(leader.pk, leader.lease_token)
    log = open(Job.objects.get(pk=leader.pk).log_path).read()
    assert f"jobs {[jobs[0].pk, jobs[2].pk]}" in log
    assert [j.status for j in fresh(*jobs)] == [Status.COMPLETED, Status.CANCELLED, Status.COMPLETED]


def test_members_of_a_cancelled_leader_batch_again(alice, node, infer):
    jobs = [submit(alice, p) for p in ("a", "b", "c", "d")]
    tick()  # a full batch of three forms at once and is dispatched; "d" keeps collecting
    leader = fresh(jobs[0])[0]
    assert leader.status == Status.DISPATCHED
    job_cancel(job=leader, user=alice)  # cancelled before it ran: its members must not be stranded
    tick(now=later())
    b, c, d = fresh(*jobs[1:])
    assert b.status == Status.DISPATCHED and b.batch_role == "leader"  # b, c and d batch together
    assert c.batch_leader_id == d.batch_leader_id == b.pk


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"batch_argv_template": []}, "batch_argv_template"),
        ({"batch_argv_template": ["run", "{prompt}"]}, "batch_argv_template"),  # not a key parameter
        ({"batch_max_size": 1}, "batch_max_size"),
        ({"batch_key_params": "steps"}, "batch_key_params"),
    ],
)
def test_a_batchable_template_is_checked(infer, change, field):
    for name, value in change.items():
        setattr(infer, name, value)
    with pytest.raises(ValidationError) as error:
        infer.full_clean()
    assert field in error.value.message_dict


def test_a_batch_whose_executor_was_lost_is_recovered_job_by_job_to_run_alone(alice, node, infer, settings):
    from scheduling.reaper import reap

    jobs = [submit(alice, p) for p in ("a", "b", "c")]
    tick()
    old = timezone.now() - timedelta(seconds=settings.GPUQ_DISPATCH_TIMEOUT_SECONDS + 5)
    Attempt.objects.filter(job__in=jobs).update(dispatched_at=old)
    assert reap() == 3
    assert [(j.status, j.attempt, j.batch_role) for j in fresh(*jobs)] == [(Status.PENDING, 2, "")] * 3
    assert not Allocation.objects.active().exists()


def test_members_do_not_count_against_concurrency_limits(alice, node, infer):
    from scheduling.models import PolicyType
    from scheduling.policies import set_policy

    set_policy(PolicyType.CONCURRENCY, enabled=True, config={"user_max_concurrent": 2})
    batch = [submit(alice, p) for p in ("a", "b", "c")]  # full: one batch on one GPU
    alone = submit(alice, "x", steps=99)  # another key: runs alone after its window
    tick()
    assert [j.status for j in fresh(*batch)] == [Status.DISPATCHED] * 3
    tick(now=later())  # the batch is one of alice's two jobs, not three
    assert fresh(alone)[0].status == Status.DISPATCHED
