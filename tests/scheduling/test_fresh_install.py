"""What a fresh install really has (seed 001's defaults: 5 jobs running at once, 2 per user), as the
README says: `gpuq_bootstrap` (run by `scripts/run` and `gpuq_serve`) writes the concurrency policy out
in full, and a concurrency policy's missing keys mean no limit."""

from io import StringIO

from django.core.management import call_command

from gpus.inventory import parse_declared
from gpus.services import node_register
from scheduling import policies
from scheduling.models import Job, PolicyType, SchedulingPolicy
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for, make_user
from tests.factories import make_job


def bootstrap():
    call_command("gpuq_bootstrap", stdout=StringIO())


def big_node():
    return node_register(
        name="big", backend="declared", gpus=parse_declared("8x24GB", node_name="big"), labels={}, boot_id=""
    )


def test_a_fresh_install_limits_5_running_jobs_and_2_per_user(db, alice):
    bootstrap()
    row = SchedulingPolicy.objects.get(type=PolicyType.CONCURRENCY)
    assert row.enabled and row.config == {
        "max_concurrent": 5,
        "user_max_concurrent": 2,
        "team_max_concurrent": None,
    }
    assert api_for(alice).get("/api/v1/queue/concurrency").json() == row.config
    assert api_for(alice).get("/api/v1/queue/stats").json()["max_concurrent"] == 5


def test_on_a_fresh_install_at_most_2_per_user_and_5_in_all_start(db, alice, bob):
    bootstrap()
    big_node()
    carol = make_user("carol")
    jobs = {who: [make_job(who) for _ in range(3)] for who in (alice, bob, carol)}
    tick()
    status = {j.pk: (j.status, j.wait_reason) for j in Job.objects.all()}
    assert status[jobs[alice][2].pk] == (Status.PENDING, "user_limit")
    assert status[jobs[bob][2].pk] == (Status.PENDING, "user_limit")
    # Each user's first two would make six: the fifth start fills the global cap and carol's second waits.
    assert sum(s == Status.DISPATCHED for s, _ in status.values()) == 5
    assert status[jobs[carol][1].pk] == (Status.PENDING, "global_limit")


def test_a_fresh_install_backfills_in_fifo_order_but_an_upgrade_does_not_turn_backfill_on(db):
    bootstrap()
    row = SchedulingPolicy.objects.get(type=PolicyType.BACKFILL)
    assert row.enabled and row.config == {"depth": 100}
    assert policies.to_planner(policies.enabled_configs()).within_priority == "fifo"
    row.delete()  # an install that chose strict order
    bootstrap()
    assert not SchedulingPolicy.objects.filter(type=PolicyType.BACKFILL).exists()


def test_bootstrap_leaves_an_admins_concurrency_policy_alone(db):
    policies.set_policy(PolicyType.CONCURRENCY, enabled=False, config={"max_concurrent": 9})
    bootstrap()
    row = SchedulingPolicy.objects.get(type=PolicyType.CONCURRENCY)
    assert (row.enabled, row.config) == (False, {"max_concurrent": 9})


def test_a_concurrency_policy_made_with_nothing_in_it_limits_nothing(db):
    config = policies.validate_config(PolicyType.CONCURRENCY, {})
    limits = policies.to_planner({PolicyType.CONCURRENCY: config}).limits
    assert (limits.max_concurrent, limits.user_max_concurrent, limits.team_max_concurrent) == (
        None,
        None,
        None,
    )


def test_without_bootstrap_there_is_no_limit(db, alice):
    big_node()
    jobs = [make_job(alice) for _ in range(6)]
    tick()
    assert all(Job.objects.get(pk=j.pk).status == Status.DISPATCHED for j in jobs)
