"""Reservations kept across real ticks: the stored plan's reservations feed the next tick (issue 13)."""

import pytest
from django.contrib.auth.models import Permission

from scheduling import executor, planstore, selectors
from scheduling.models import Job, PolicyType
from scheduling.policies import set_policy
from scheduling.states import Status
from scheduling.tick import tick
from tests.conftest import api_for


@pytest.fixture
def raw(alice, bob):
    permission = Permission.objects.get(codename="submit_raw_command")
    for user in (alice, bob):
        user.user_permissions.add(permission)


def submit(user, **body):
    response = api_for(user).post("/api/v1/jobs", {"argv": ["true"], **body}, format="json")
    assert response.status_code == 201, response.json()
    return Job.objects.get(pk=response.json()["id"])


def reservations():
    return {r.job_id: r.start for r in planstore.reservations()}


def test_a_job_ending_early_does_not_push_a_reservation_later_across_ticks(alice, bob, root, node, raw):
    # testnode has 2 GPUs. Two jobs hold them, for at most 100 s and 300 s. A 2-GPU job of 100 s is
    # reserved for when the second ends; a 1-GPU job of 200 s fits before it, from when the first ends.
    set_policy(PolicyType.BACKFILL, enabled=True)
    short_holder = submit(root, time_limit_seconds=100)
    long_holder = submit(root, time_limit_seconds=300)
    tick()
    big = submit(alice, gpu_count=2, time_limit_seconds=100)
    small = submit(bob, time_limit_seconds=200)
    tick()
    assert Job.objects.filter(pk__in=[short_holder.pk, long_holder.pk], status=Status.DISPATCHED).count() == 2
    first = reservations()
    assert set(first) == {big.pk, small.pk} and first[small.pk] < first[big.pk]
    assert selectors.snapshot().previous_reservations == planstore.reservations()

    # The 300 s job ends at once. Planned afresh, the big job would take the time from when the 100 s
    # job ends and push the small one after it; kept, the big job keeps its slot and the small job,
    # which now fits without delaying it, starts.
    long_holder.refresh_from_db()
    executor.run_job(long_holder.pk, long_holder.lease_token)
    long_holder.refresh_from_db()
    assert long_holder.status == Status.COMPLETED
    tick()
    small.refresh_from_db()
    assert small.status == Status.DISPATCHED
    second = reservations()
    assert set(second) == {big.pk} and second[big.pk] <= first[big.pk]  # never later


def test_with_backfill_off_the_next_plan_keeps_no_reservations(alice, node, raw):
    set_policy(PolicyType.BACKFILL, enabled=True)
    submit(alice, gpu_count=2, time_limit_seconds=60)
    submit(alice, gpu_count=2, time_limit_seconds=60)
    tick()
    assert len(planstore.reservations()) == 1
    set_policy(PolicyType.BACKFILL, enabled=False)
    assert selectors.snapshot().previous_reservations == ()


@pytest.mark.django_db
def test_a_gangs_stored_reservation_comes_back_with_every_node_it_reserved():
    # Kept across ticks, a gang's reservation must name all its nodes, or the next plan cannot keep it.
    from datetime import UTC, datetime

    from scheduling.planner import Plan, Reservation, Snapshot

    when = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    gang = Reservation(7, "a", when, 4, ("a", "b"))
    single = Reservation(8, "c", None, 1)
    planstore.save(Plan(order=(7, 8), reservations=(gang, single)), Snapshot((), ()), when)
    assert planstore.reservations() == (gang, single)
