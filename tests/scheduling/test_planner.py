"""The pure planner: a table of cases for each policy, hypothesis for the invariants. No database."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, time, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gpus.placement import PLAIN, GpuSpec, Needs, NodeFree, could_ever_fit, eligible
from scheduling.planner import (
    INF,
    Ageing,
    Limits,
    OffPeak,
    PendingJob,
    Policies,
    Preempt,
    Preemption,
    Quota,
    Reason,
    RunningJob,
    Snapshot,
    Start,
    Wait,
    plan,
    queue_order,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def job(id, gpus=1, priority=10, age=0, **kw):
    """A pending job submitted `1000 - age` seconds before NOW (a higher age is a later submit)."""
    return PendingJob(
        id=id, gpu_count=gpus, priority=priority, submitted_at=NOW - timedelta(seconds=1000 - age), **kw
    )


def running(id, node="n", gpus=1, minutes_ago=10, **kw):
    return RunningJob(id=id, node=node, gpu_count=gpus, started_at=NOW - timedelta(minutes=minutes_ago), **kw)


def snap(*jobs, free=(0, 1), run=(), nodes=None, **kw):
    return Snapshot(
        pending=tuple(jobs), nodes=nodes or (NodeFree("n", tuple(free)),), running=tuple(run), **kw
    )


def reasons(result):
    return {w.job_id: w.reason for w in result.waits}


# --- order and resources ----------------------------------------------------------------------------


def test_two_gpus_three_jobs_two_start_and_the_third_waits_for_resources():
    result = plan(snap(job(1), job(2, age=1), job(3, age=2)), NOW)
    assert result.starts == (Start(1, "n", (0,)), Start(2, "n", (1,)))
    assert reasons(result) == {3: Reason.RESOURCES}


def test_higher_priority_goes_first_then_first_come_first_served():
    jobs = (job(1, priority=0), job(2, priority=20, age=5), job(3, priority=20, age=1), job(4, priority=10))
    result = plan(snap(*jobs, free=(0,)), NOW)
    assert result.order == (3, 2, 4, 1)
    assert result.starts == (Start(3, "n", (0,)),)


def test_an_operators_order_overrides_fifo_within_a_priority():
    result = plan(snap(job(1), job(2, age=1, order=0.0), free=(0,)), NOW)
    assert result.order == (2, 1)


def test_without_backfill_jobs_behind_a_job_that_does_not_fit_wait_for_priority():
    result = plan(snap(job(1, gpus=2), job(2, gpus=1, age=1), free=(0,)), NOW)
    assert result.starts == ()
    assert reasons(result) == {1: Reason.RESOURCES, 2: Reason.PRIORITY}
    assert result.waits[1].detail == "behind job 1"


def test_a_multi_gpu_job_gets_gpus_on_one_node():
    result = plan(snap(job(1, gpus=2), nodes=(NodeFree("a", (0,)), NodeFree("b", (4, 5)))), NOW)
    assert result.starts == (Start(1, "b", (4, 5)),)


# --- ageing and fair share --------------------------------------------------------------------------


def test_ageing_lifts_a_long_waiting_job_above_newer_higher_priority_work():
    ageing = Ageing(threshold_seconds=3600, boost_per_hour=5, max_boost=20)
    old = PendingJob(id=1, gpu_count=1, priority=0, submitted_at=NOW - timedelta(hours=4))
    new = job(2, priority=10)
    policies = Policies(ageing=ageing)
    assert plan(snap(old, new, free=(0,), policies=policies), NOW).starts[0].job_id == 1  # 0 + 15 > 10
    assert plan(snap(old, new, free=(0,)), NOW).starts[0].job_id == 2


def test_the_ageing_boost_grows_with_the_wait_and_is_capped():
    assert Ageing(3600, 5, 20).boost(100 * 3600) == 20
    assert Ageing(3600, 5, 20).boost(1800) == 2.5


def test_fair_share_puts_a_light_users_first_job_before_a_heavy_users_tenth():
    heavy = [job(i, owner=1, age=i) for i in range(1, 11)]
    light = job(99, owner=2, age=50)
    result = plan(
        snap(*heavy, light, free=(0,), policies=Policies(fair_share=True), user_share={1: 50_000.0}), NOW
    )
    assert result.starts == (Start(99, "n", (0,)),)
    assert plan(snap(*heavy, light, free=(0,)), NOW).starts[0].job_id == 1


# --- limits and quotas -------------------------------------------------------------------------------


def test_the_global_limit_holds_new_starts():
    result = plan(
        snap(job(1), free=(0, 1), run=[running(50)], policies=Policies(limits=Limits(max_concurrent=1))), NOW
    )
    assert result.starts == () and reasons(result) == {1: Reason.GLOBAL_LIMIT}


def test_a_user_limit_holds_only_that_users_jobs():
    policies = Policies(limits=Limits(user_max_concurrent=1))
    result = plan(
        snap(job(1, owner=7), job(2, owner=8, age=1), run=[running(50, owner=7)], policies=policies), NOW
    )
    assert [s.job_id for s in result.starts] == [2]
    assert reasons(result) == {1: Reason.USER_LIMIT}


def test_a_team_limit_holds_the_team_but_not_jobs_without_a_team():
    policies = Policies(limits=Limits(team_max_concurrent=1))
    jobs = (job(1, owner=7, team=3), job(2, owner=8, team=None, age=1))
    result = plan(snap(*jobs, run=[running(50, owner=9, team=3)], policies=policies), NOW)
    assert [s.job_id for s in result.starts] == [2]
    assert reasons(result) == {1: Reason.TEAM_LIMIT}


def test_a_job_held_by_a_limit_does_not_block_the_jobs_behind_it():
    policies = Policies(limits=Limits(user_max_concurrent=0))
    result = plan(
        snap(
            job(1, owner=7, priority=30),
            job(2, owner=8),
            free=(0,),
            policies=replace(policies, limits=Limits(user_max_concurrent=1)),
            run=[running(50, owner=7, node="m")],
        ),
        NOW,
    )
    assert [s.job_id for s in result.starts] == [2]


def test_an_exceeded_quota_holds_new_starts_with_the_numbers():
    s = snap(job(1, owner=7), job(2, owner=8, age=1), user_quota={7: Quota(daily=3600)}, user_day={7: 3600.0})
    result = plan(s, NOW)
    assert [x.job_id for x in result.starts] == [2]
    assert reasons(result) == {1: Reason.QUOTA}
    assert "daily quota is used up (1.0 of 1.0 GPU-hours)" in result.waits[0].detail


def test_a_team_quota_holds_the_teams_jobs_and_no_quota_is_unlimited():
    s = snap(
        job(1, owner=7, team=3),
        job(2, owner=8, age=1),
        team_quota={3: Quota(weekly=10)},
        team_week={3: 11.0},
        user_day={8: 1e9},
    )
    result = plan(s, NOW)
    assert [x.job_id for x in result.starts] == [2] and reasons(result) == {1: Reason.QUOTA}


# --- time windows ------------------------------------------------------------------------------------


def test_off_peak_only_jobs_wait_outside_the_window():
    window = OffPeak(time(22), time(8), "UTC")
    result = plan(snap(job(1, off_peak_only=True), job(2, age=1), policies=Policies(off_peak=window)), NOW)
    assert [s.job_id for s in result.starts] == [2]
    assert reasons(result) == {1: Reason.OFF_PEAK}
    assert "2026-11-23T22:00:00+00:00" in result.waits[0].detail


def test_off_peak_windows_wrap_midnight_in_their_time_zone():
    window = OffPeak(time(22), time(8), "Europe/Paris")  # UTC+1 in November
    assert window.contains(datetime(2026, 11, 23, 21, 30, tzinfo=UTC))  # 22:30 in Paris
    assert window.contains(datetime(2026, 11, 24, 6, 59, tzinfo=UTC))  # 07:59 in Paris
    assert not window.contains(datetime(2026, 11, 24, 7, 0, tzinfo=UTC))  # 08:00 in Paris
    assert not window.contains(datetime(2026, 11, 23, 20, 59, tzinfo=UTC))


def test_a_daytime_window_does_not_wrap():
    window = OffPeak(time(1), time(5), "UTC")
    assert window.contains(datetime(2026, 11, 23, 3, tzinfo=UTC))
    assert not window.contains(datetime(2026, 11, 23, 23, tzinfo=UTC))


def test_without_a_window_off_peak_jobs_never_start():
    result = plan(snap(job(1, off_peak_only=True)), NOW)
    assert reasons(result) == {1: Reason.OFF_PEAK}


# --- dependencies, conflicts, serial mode, pause, expiry -------------------------------------------------


def test_a_job_waits_for_its_dependencies_then_starts():
    waiting = plan(snap(job(1, depends_on=(50,))), NOW)
    assert reasons(waiting) == {1: Reason.DEPENDENCY} and "50" in waiting.waits[0].detail
    assert plan(snap(job(1, depends_on=(50,)), completed=frozenset({50})), NOW).starts[0].job_id == 1


def test_a_job_whose_dependency_failed_fails_with_reason_dependency():
    result = plan(snap(job(1, depends_on=(50, 51)), completed=frozenset({50}), dead=frozenset({51})), NOW)
    assert [(f.job_id, f.reason) for f in result.fails] == [(1, Reason.DEPENDENCY)]
    assert "51" in result.fails[0].detail


def test_a_conflicting_job_waits_and_names_the_holder():
    result = plan(
        snap(
            job(1, resources=("model:flux-dev",)),
            job(2, age=1),
            run=[running(50, node="m", resources=("model:flux-dev",))],
        ),
        NOW,
    )
    assert [s.job_id for s in result.starts] == [2]
    assert (
        result.waits[0].reason == Reason.CONFLICT
        and result.waits[0].detail == "model:flux-dev is held by job 50"
    )


def test_two_waiting_jobs_wanting_the_same_resource_do_not_start_together():
    result = plan(snap(job(1, resources=("db",)), job(2, age=1, resources=("db",))), NOW)
    assert [s.job_id for s in result.starts] == [1] and reasons(result) == {2: Reason.CONFLICT}


def test_serial_mode_runs_one_job_at_a_time_globally_or_per_node():
    nodes = (NodeFree("a", (0, 1)), NodeFree("b", (0, 1)))
    glob = plan(snap(job(1), job(2, age=1), nodes=nodes, policies=Policies(serial="global")), NOW)
    assert [s.job_id for s in glob.starts] == [1] and reasons(glob) == {2: Reason.SERIAL}
    per_node = plan(
        snap(job(1), job(2, age=1), job(3, age=2), nodes=nodes, policies=Policies(serial="node")), NOW
    )
    assert sorted(s.node for s in per_node.starts) == ["a", "b"] and 3 in reasons(per_node)


def test_a_paused_queue_starts_nothing():
    result = plan(snap(job(1), policies=Policies(queue_paused=True)), NOW)
    assert result.starts == () and reasons(result) == {1: Reason.QUEUE_PAUSED}


def test_jobs_waiting_too_long_expire():
    old = PendingJob(id=1, gpu_count=1, priority=10, submitted_at=NOW - timedelta(hours=5))
    result = plan(snap(old, job(2), policies=Policies(expiry_seconds=4 * 3600)), NOW)
    assert [(f.job_id, f.reason) for f in result.fails] == [(1, Reason.EXPIRED)]
    assert [s.job_id for s in result.starts] == [2]


# --- backfill and preemption --------------------------------------------------------------------------


def test_backfill_starts_a_short_job_that_ends_before_the_big_jobs_reservation():
    # Node of 2 GPUs: one busy until +30 min (time limit). Top job needs 2 → reserved at +30 min.
    busy = running(50, gpus=1, minutes_ago=30, time_limit=3600)
    jobs = (job(1, gpus=2, time_limit=3600), job(2, gpus=1, age=1, time_limit=600), job(3, gpus=1, age=2))
    strict = plan(snap(*jobs, free=(1,), run=[busy]), NOW)
    assert strict.starts == () and reasons(strict) == {
        1: Reason.RESOURCES,
        2: Reason.PRIORITY,
        3: Reason.PRIORITY,
    }
    result = plan(snap(*jobs, free=(1,), run=[busy], policies=Policies(backfill=True)), NOW)
    assert result.starts == (Start(2, "n", (1,)),)  # 10 min < 30 min: cannot delay job 1
    assert reasons(result) == {1: Reason.RESOURCES, 3: Reason.RESOURCES}  # 3 has no time limit: it could
    assert result.reservations[0].job_id == 1 and result.reservations[0].start == NOW + timedelta(minutes=30)


def test_a_reservation_counts_the_gpus_of_jobs_started_before_it():
    # Job 1 takes one of two free GPUs for good (no time limit). Job 2 needs two: not now (one is
    # job 1's), but when job 50 gives its GPU back at its time limit. Job 3 needs three: never.
    busy = running(50, gpus=1, minutes_ago=0, time_limit=600)
    result = plan(
        snap(
            job(1),
            job(2, gpus=2, age=1, time_limit=60),
            job(3, gpus=3, age=2),
            free=(0, 1),
            run=[busy],
            nodes=(NodeFree("n", (0, 1)),),
            policies=Policies(backfill=True),
        ),
        NOW,
    )
    assert result.starts == (Start(1, "n", (0,)),)
    assert [(r.job_id, r.start) for r in result.reservations] == [(2, NOW + timedelta(minutes=10))]
    finite = plan(
        snap(
            job(1, time_limit=300),
            job(2, gpus=2, age=1, time_limit=60),
            free=(0, 1),
            run=[busy],
            policies=Policies(backfill=True),
        ),
        NOW,
    )
    assert finite.reservations[0].start == NOW + timedelta(seconds=300)  # when job 1 must have ended


def test_backfill_uses_a_node_the_reservation_does_not_need():
    nodes = (NodeFree("a", ()), NodeFree("b", (0,)))
    busy = running(50, node="a", gpus=2, minutes_ago=0, time_limit=600)
    result = plan(
        snap(
            job(1, gpus=2, time_limit=60),
            job(2, age=1),
            nodes=nodes,
            run=[busy],
            policies=Policies(backfill=True),
        ),
        NOW,
    )
    assert result.starts == (Start(2, "b", (0,)),)  # job 1 is reserved on a; b is not needed


def test_a_job_waits_for_gpus_that_fit_it_and_says_what_it_asked():
    nodes = (
        NodeFree("l4", (0, 1), {0: SMALL, 1: SMALL}),
        NodeFree("a100", (), {0: BIG, 1: BIG}, {"zone": "eu-west"}),
    )
    busy = running(50, node="a100", gpus=2, minutes_ago=0, time_limit=600)
    wants_big = job(1, needs=Needs(min_memory_mb=80000, labels=(("zone", "eu*"),)), time_limit=60)
    result = plan(snap(wants_big, job(2, age=1), nodes=nodes, run=[busy]), NOW)
    # Strict order: job 1 could use none of the free L4s, so job 2 passes it without delaying it.
    assert result.starts == (Start(2, "l4", (0,)),)
    assert result.waits[0].reason == Reason.RESOURCES
    assert result.waits[0].detail == (
        "needs 1 GPU(s) (≥ 80000 MB each; labels zone=eu*) on one node; most free on a node: 0"
    )
    backfilled = plan(
        snap(wants_big, job(2, age=1), nodes=nodes, run=[busy], policies=Policies(backfill=True)), NOW
    )
    # Job 1's reservation can only be on the A100 node, so job 2 may use the L4s without delaying it.
    assert backfilled.starts == (Start(2, "l4", (0,)),)
    assert [(r.job_id, r.node) for r in backfilled.reservations] == [(1, "a100")]


def test_preemption_stops_low_priority_preemptible_jobs_for_an_urgent_one():
    victims = [
        running(50, gpus=1, priority=0, preemptible=True, minutes_ago=5),
        running(51, gpus=1, priority=0, preemptible=True, minutes_ago=1),
    ]
    urgent = job(1, gpus=1, priority=30)
    off = plan(snap(urgent, free=(), run=victims), NOW)
    assert off.preempts == () and reasons(off) == {1: Reason.RESOURCES}
    result = plan(snap(urgent, free=(), run=victims, policies=Policies(preemption=Preemption(30, 0))), NOW)
    assert result.preempts == (Preempt(51, 1),)  # the most recently started of the lowest tier
    assert reasons(result) == {1: Reason.PREEMPTING}


def test_preemption_spares_jobs_not_marked_preemptible_or_above_the_victim_tier():
    run = [running(50, priority=0, preemptible=False), running(51, priority=10, preemptible=True)]
    result = plan(
        snap(job(1, priority=30), free=(), run=run, policies=Policies(preemption=Preemption(30, 0))), NOW
    )
    assert result.preempts == ()


# --- promises that hold: starvation, reservations, preemption, quotas, chains (issue 13) ---------------

H100, A10 = GpuSpec(81920, "NVIDIA H100 80GB HBM3"), GpuSpec(24576, "NVIDIA A10")


def test_a_job_waiting_longer_than_the_threshold_goes_ahead_of_every_higher_priority_job():
    ageing = Policies(ageing=Ageing(threshold_seconds=86400, boost_per_hour=1, max_boost=20))
    month_old = PendingJob(id=1, gpu_count=1, priority=0, submitted_at=NOW - timedelta(days=30))
    hour_old = PendingJob(id=2, gpu_count=1, priority=30, submitted_at=NOW - timedelta(hours=1))
    result = plan(snap(hour_old, month_old, free=(0,), policies=ageing), NOW)
    assert result.order == (1, 2) and result.starts == (Start(1, "n", (0,)),)


def test_starving_jobs_go_longest_waiting_first_so_nothing_later_passes_them():
    ageing = Policies(ageing=Ageing(threshold_seconds=3600))
    older = PendingJob(id=1, gpu_count=1, priority=0, submitted_at=NOW - timedelta(hours=5))
    newer_urgent = PendingJob(id=2, gpu_count=1, priority=30, submitted_at=NOW - timedelta(hours=2))
    assert [j.id for j in queue_order(snap(newer_urgent, older, policies=ageing), NOW)] == [1, 2]


def test_a_starving_job_is_reserved_before_anything_of_lower_rank():
    busy = running(50, gpus=1, minutes_ago=0, time_limit=600)
    starving = PendingJob(id=1, gpu_count=2, priority=0, submitted_at=NOW - timedelta(days=2), time_limit=60)
    urgent_long = job(2, priority=30, time_limit=3600)
    policies = Policies(backfill=True, ageing=Ageing(threshold_seconds=86400))
    result = plan(snap(urgent_long, starving, free=(1,), run=[busy], policies=policies), NOW)
    assert (result.reservations[0].job_id, result.reservations[0].start) == (1, NOW + timedelta(minutes=10))
    assert result.starts == ()  # the urgent job, run to its limit, would delay the starving one


def test_ageing_and_expiry_count_from_when_the_job_became_able_to_wait():
    released = PendingJob(
        id=1,
        gpu_count=1,
        priority=10,
        submitted_at=NOW - timedelta(hours=5),
        waiting_since=NOW - timedelta(minutes=1),  # scheduled for then, released now
    )
    result = plan(snap(released, policies=Policies(expiry_seconds=4 * 3600)), NOW)
    assert result.fails == () and result.starts == (Start(1, "n", (0,)),)
    ageing = Policies(ageing=Ageing(threshold_seconds=3600, boost_per_hour=0))
    fresh = job(2, priority=20)
    assert [j.id for j in queue_order(snap(released, fresh, policies=ageing), NOW)] == [2, 1]


def test_a_running_job_without_a_time_limit_does_not_turn_off_the_reservation():
    # Node of 2 GPUs, one held by a job of unknown length. Job 1 needs both: it is reserved for once that
    # job ends; job 2 (no limit) would hold its GPU through then, so it waits; job 3 (60 s) may backfill.
    endless = running(50, gpus=1, minutes_ago=5)
    jobs = (job(1, gpus=2, time_limit=3600), job(2, age=1), job(3, age=2, time_limit=60))
    result = plan(snap(*jobs, free=(1,), run=[endless], policies=Policies(backfill=True)), NOW)
    assert [(r.job_id, r.node, r.start) for r in result.reservations] == [(1, "n", None)]
    assert result.starts == (Start(3, "n", (1,)),)
    assert reasons(result)[2] == Reason.RESOURCES
    assert "once running jobs without a time limit end" in result.waits[0].detail


def test_a_job_held_by_its_users_cap_is_reserved_from_when_the_cap_frees():
    # Alice may run one job; hers ends at +100 s. Her next job needs both GPUs from then: bob's job of
    # 10,000 s must not take the free GPU, his job of 50 s may.
    alices = running(50, gpus=1, owner=7, minutes_ago=0, time_limit=100)
    held = job(1, gpus=2, owner=7, time_limit=3600)
    long, short = job(2, owner=8, age=1, time_limit=10_000), job(3, owner=8, age=2, time_limit=50)
    policies = Policies(backfill=True, limits=Limits(user_max_concurrent=1))
    result = plan(snap(held, long, short, free=(1,), run=[alices], policies=policies), NOW)
    assert [(r.job_id, r.start) for r in result.reservations[:1]] == [(1, NOW + timedelta(seconds=100))]
    assert result.starts == (Start(3, "n", (1,)),)
    assert reasons(result)[1] == Reason.USER_LIMIT and "reserved on n from" in result.waits[0].detail


def test_a_job_that_cannot_be_placed_does_not_hold_the_queue_in_strict_order():
    nodes = (NodeFree("h100", (), {0: H100, 1: H100}), NodeFree("a10", (0, 1), {0: A10, 1: A10}))
    busy = running(50, node="h100", gpus=2)
    wants_h100 = job(1, needs=Needs(model="*H100*"))
    result = plan(
        snap(wants_h100, job(2, age=1), job(3, gpus=2, age=2), job(4, age=3), nodes=nodes, run=[busy]), NOW
    )
    assert result.starts == (Start(2, "a10", (0,)),)  # job 1 could not use the A10s
    # Job 3 does not fit and keeps the A10 it could use: job 4 waits behind it (strict order).
    assert reasons(result) == {1: Reason.RESOURCES, 3: Reason.PRIORITY, 4: Reason.PRIORITY}


def test_a_chain_of_dependencies_fails_in_one_plan():
    chain = (
        job(3, depends_on=(2,), priority=30),
        job(2, depends_on=(1,), priority=20),
        job(1, depends_on=(100,)),
    )
    result = plan(snap(*chain, dead=frozenset({100})), NOW)
    assert sorted((f.job_id, f.reason, f.detail) for f in result.fails) == [
        (1, Reason.DEPENDENCY, "job 100 did not complete"),
        (2, Reason.DEPENDENCY, "job 1 did not complete"),
        (3, Reason.DEPENDENCY, "job 2 did not complete"),
    ]


def test_a_quota_admits_a_job_only_if_its_time_limit_fits_in_what_remains():
    # One GPU-second left of 2 GPU-hours: four 8-GPU jobs of an hour must not start.
    burst = [job(i, gpus=8, owner=7, age=i, time_limit=3600) for i in range(1, 5)]
    nodes = tuple(NodeFree(f"n{i}", tuple(range(8))) for i in range(4))
    quota = {7: Quota(daily=7200)}
    result = plan(snap(*burst, nodes=nodes, user_quota=quota, user_day={7: 7199.0}), NOW)
    assert result.starts == () and set(reasons(result).values()) == {Reason.QUOTA}
    assert "0.0 GPU-hours left; this job may use 8.0" in result.waits[0].detail
    lenient = plan(
        snap(
            *burst,
            nodes=nodes,
            user_quota=quota,
            user_day={7: 7199.0},
            policies=Policies(quota_admit="any_remaining"),
        ),
        NOW,
    )
    assert len(lenient.starts) == 4  # the switch: any remaining GPU time admits


def test_a_burst_of_starts_cannot_overshoot_a_quota():
    jobs = [job(i, owner=7, age=i, time_limit=3600) for i in range(1, 5)]
    nodes = (NodeFree("n", tuple(range(8))),)
    result = plan(snap(*jobs, nodes=nodes, user_quota={7: Quota(daily=2 * 3600)}), NOW)
    assert [s.job_id for s in result.starts] == [1, 2]  # two GPU-hours: two one-hour jobs
    assert reasons(result) == {3: Reason.QUOTA, 4: Reason.QUOTA}


def test_preemption_picks_victims_only_where_the_preemptor_could_then_run():
    nodes = (NodeFree("h100", (), {0: H100}), NodeFree("a10", (), {0: A10}))
    on_a10 = running(50, node="a10", priority=0, preemptible=True, gpus=1)
    on_h100 = running(51, node="h100", priority=10, preemptible=True, gpus=1)
    urgent = job(1, priority=30, needs=Needs(model="*H100*"))
    result = plan(
        snap(urgent, nodes=nodes, run=[on_a10, on_h100], policies=Policies(preemption=Preemption(30, 10))),
        NOW,
    )
    assert result.preempts == (Preempt(51, 1),)  # not the A10 job, though its priority is lower
    mixed = (NodeFree("m", (), {0: A10, 1: H100}),)
    victims = [
        RunningJob(50, "m", 1, NOW - timedelta(hours=1), priority=0, preemptible=True, gpus=(0,)),
        RunningJob(51, "m", 1, NOW - timedelta(hours=2), priority=0, preemptible=True, gpus=(1,)),
    ]
    result = plan(
        snap(urgent, nodes=mixed, run=victims, policies=Policies(preemption=Preemption(30, 0))), NOW
    )
    assert result.preempts == (Preempt(51, 1),)  # the one holding the H100, not the newest


def test_no_new_victim_while_earlier_victims_are_still_stopping():
    stopping = running(50, priority=0, preemptible=True, stopping=True)
    other = running(51, priority=0, preemptible=True)
    urgent = job(1, gpus=2, priority=30)
    result = plan(
        snap(urgent, free=(), run=[stopping, other], policies=Policies(preemption=Preemption(30, 0))), NOW
    )
    assert result.preempts == ()
    assert result.waits == (Wait(1, Reason.PREEMPTING, "waits for job 50 to stop"),)


def test_jobs_behind_a_preempting_job_leave_it_the_free_gpus_it_will_need():
    victim = running(50, priority=0, preemptible=True)
    urgent, later = job(1, gpus=2, priority=30), job(2, age=1)
    result = plan(
        snap(urgent, later, free=(1,), run=[victim], policies=Policies(preemption=Preemption(30, 0))), NOW
    )
    assert result.preempts == (Preempt(50, 1),) and result.starts == ()
    assert reasons(result) == {1: Reason.PREEMPTING, 2: Reason.PRIORITY}


def test_a_job_is_not_preempted_before_its_minimum_runtime():
    young = running(50, priority=0, preemptible=True, minutes_ago=1)
    old = running(51, priority=0, preemptible=True, minutes_ago=30)
    rule = Preemption(30, 0, min_runtime_seconds=600)
    result = plan(
        snap(job(1, priority=30), free=(), run=[young, old], policies=Policies(preemption=rule)), NOW
    )
    assert result.preempts == (Preempt(51, 1),)  # the newest would go first without the rule
    alone = plan(snap(job(1, priority=30), free=(), run=[young], policies=Policies(preemption=rule)), NOW)
    assert alone.preempts == () and reasons(alone) == {1: Reason.RESOURCES}


# --- invariants ---------------------------------------------------------------------------------------

pending_jobs = st.lists(
    st.builds(
        PendingJob,
        id=st.integers(1, 500),
        gpu_count=st.integers(1, 3),
        priority=st.sampled_from([-10, 0, 10, 20, 30]),
        submitted_at=st.integers(0, 20_000).map(lambda s: NOW - timedelta(seconds=s)),
        owner=st.integers(1, 4),
        team=st.sampled_from([None, 1, 2]),
        off_peak_only=st.booleans(),
        depends_on=st.lists(st.integers(600, 605), max_size=2).map(tuple),
        resources=st.lists(st.sampled_from(["model:a", "model:b"]), max_size=1).map(tuple),
        time_limit=st.sampled_from([None, 60.0, 600.0, 3600.0]),
        needs=st.sampled_from(
            [
                PLAIN,
                PLAIN,
                Needs(min_memory_mb=40000),
                Needs(model="*l4*"),
                Needs(device_ids=(1,)),
                Needs(labels=(("zone", "eu*"),)),
                Needs(target="local"),
                Needs(target="worker", min_memory_mb=80000),
            ]
        ),
    ),
    max_size=25,
    unique_by=lambda j: j.id,
)
running_jobs = st.lists(
    st.builds(
        RunningJob,
        id=st.integers(1000, 1100),
        node=st.sampled_from(["a", "b", "c"]),
        gpu_count=st.integers(1, 2),
        started_at=st.integers(0, 7200).map(lambda s: NOW - timedelta(seconds=s)),
        owner=st.integers(1, 4),
        team=st.sampled_from([None, 1, 2]),
        priority=st.sampled_from([-10, 0, 10]),
        resources=st.lists(st.sampled_from(["model:a", "model:b"]), max_size=1).map(tuple),
        time_limit=st.sampled_from([None, 3600.0, 9000.0]),
        preemptible=st.booleans(),
        stopping=st.sampled_from([False, False, False, True]),
    ),
    max_size=6,
    unique_by=lambda r: r.id,
)
BIG, SMALL = GpuSpec(81920, "A100-SXM4-80GB"), GpuSpec(24576, "NVIDIA L4")
NODE_META = {  # specs, labels, local
    "a": ({i: BIG for i in range(4)}, {"zone": "eu-west"}, True),
    "b": ({i: SMALL for i in range(4)}, {"zone": "us"}, False),
    "c": ({0: SMALL, 1: BIG, 2: SMALL, 3: BIG}, {"zone": "eu-north"}, False),
}
node_sets = st.fixed_dictionaries(
    {name: st.sets(st.integers(0, 3), max_size=4) for name in ("a", "b", "c")}
).map(lambda d: tuple(NodeFree(name, tuple(sorted(free)), *NODE_META[name]) for name, free in d.items()))
policy_sets = st.builds(
    Policies,
    limits=st.builds(
        Limits,
        max_concurrent=st.sampled_from([None, 2, 5]),
        user_max_concurrent=st.sampled_from([None, 1, 2]),
        team_max_concurrent=st.sampled_from([None, 1, 3]),
    ),
    fair_share=st.booleans(),
    ageing=st.sampled_from([None, Ageing(600, 10, 20), Ageing(10_000, 1, 20)]),
    off_peak=st.sampled_from([None, OffPeak(time(22), time(8), "UTC"), OffPeak(time(11), time(13), "UTC")]),
    serial=st.sampled_from([None, "global", "node"]),
    backfill=st.booleans(),
    preemption=st.sampled_from([None, Preemption(30, 0), Preemption(30, 0, min_runtime_seconds=600)]),
    quota_admit=st.sampled_from(["time_limit", "any_remaining"]),
    queue_paused=st.sampled_from([False, False, False, True]),
)


def fits_needs(node: NodeFree, gpus, needs: Needs) -> bool:
    """What the placement rules say, written out again so that the invariant does not trust them."""
    zone = node.labels.get("zone", "")
    return (
        {"local": node.local, "worker": not node.local}.get(needs.target, True)
        and all(k == "zone" and v == "eu*" and zone.startswith("eu") for k, v in needs.labels)
        and all(node.specs[g].memory_mb >= (needs.min_memory_mb or 0) for g in gpus)
        and (needs.model != "*l4*" or all("L4" in node.specs[g].model for g in gpus))
        and (not needs.device_ids or sorted(gpus) == sorted(needs.device_ids))
    )


@settings(max_examples=200, deadline=None)
@given(
    pending_jobs,
    running_jobs,
    node_sets,
    policy_sets,
    st.dictionaries(st.integers(1, 4), st.builds(Quota, daily=st.sampled_from([None, 100.0, 10_000.0]))),
    st.dictionaries(st.integers(1, 4), st.floats(0, 200)),
    st.frozensets(st.integers(600, 605)),
    st.frozensets(st.integers(600, 605)),
)
def test_invariants(jobs, run, nodes, policies, user_quota, user_day, completed, dead):
    dead = dead - completed
    s = Snapshot(
        tuple(jobs),
        nodes,
        tuple(run),
        policies,
        user_day=user_day,
        user_quota=user_quota,
        completed=completed,
        dead=dead,
    )
    result = plan(s, NOW)
    by_id = {j.id: j for j in jobs}
    free = {n.name: set(n.free) for n in nodes}
    started = [x.job_id for x in result.starts]

    # Every waiting job is accounted for exactly once: it starts, waits with a reason, or fails.
    accounted = started + [w.job_id for w in result.waits] + [f.job_id for f in result.fails]
    assert sorted(accounted) == sorted(by_id)
    assert all(w.reason in set(Reason) and w.detail for w in result.waits)

    # GPUs are never over-allocated, and each job gets GPUs and a node that meet what it asked.
    given_out = set()
    meta = {n.name: n for n in nodes}
    for x in result.starts:
        needs = by_id[x.job_id].needs
        assert fits_needs(meta[x.node], x.gpus, needs), (x, needs)
        assert len(x.gpus) == by_id[x.job_id].gpu_count and set(x.gpus) <= free[x.node]
        assert not {(x.node, g) for g in x.gpus} & given_out
        given_out |= {(x.node, g) for g in x.gpus}

    if policies.queue_paused:
        assert not started
    # Limits are never exceeded by a start.
    lim = policies.limits
    after_users = Counter([r.owner for r in run] + [by_id[j].owner for j in started])
    after_teams = Counter([r.team for r in run if r.team] + [by_id[j].team for j in started if by_id[j].team])
    if started and lim.max_concurrent is not None:
        assert len(run) + len(started) <= max(lim.max_concurrent, len(run))
    if lim.user_max_concurrent is not None:
        assert all(
            after_users[by_id[j].owner]
            <= max(lim.user_max_concurrent, Counter(r.owner for r in run)[by_id[j].owner])
            for j in started
        )
    if lim.team_max_concurrent is not None:
        assert all(
            after_teams[by_id[j].team]
            <= max(lim.team_max_concurrent, Counter(r.team for r in run)[by_id[j].team])
            for j in started
            if by_id[j].team
        )
    for j in started:
        job_ = by_id[j]
        # Quotas: no start for a user whose quota is used up.
        q = user_quota.get(job_.owner)
        assert not (q and q.daily is not None and user_day.get(job_.owner, 0.0) >= q.daily)
        # …and under "time_limit" admission, what the user's starts may use fits in what remained.
        if q and q.daily is not None and policies.quota_admit == "time_limit":
            mine = [by_id[k] for k in started if by_id[k].owner == job_.owner and by_id[k].time_limit]
            assert user_day.get(job_.owner, 0.0) + sum(k.gpu_count * k.time_limit for k in mine) <= q.daily
        # Dependencies and windows are respected.
        assert set(job_.depends_on) <= completed
        assert not job_.off_peak_only or (policies.off_peak and policies.off_peak.contains(NOW))
        # No conflict with a running job's or another start's resources.
        held = {res for r in run for res in r.resources}
        assert not set(job_.resources) & held
    failed = {f.job_id for f in result.fails}
    assert all(
        set(by_id[f.job_id].depends_on) & (dead | failed)
        for f in result.fails
        if f.reason == Reason.DEPENDENCY
    )
    starts_res = [res for j in started for res in by_id[j].resources]
    assert len(starts_res) == len(set(starts_res))
    if policies.serial == "global":
        assert len(started) <= (0 if run else 1)

    # Strict order without backfill: a start passes a job that waits for GPUs only on GPUs that job
    # could not use (not eligible, or on a node too small for it).
    if not policies.backfill:
        rank = {jid: i for i, jid in enumerate(result.order)}
        blocked = [w.job_id for w in result.waits if w.reason in (Reason.RESOURCES, Reason.PRIORITY)]
        for x in result.starts:
            for b in blocked:
                if rank[b] < rank[x.job_id] and could_ever_fit(
                    by_id[b].gpu_count, [meta[x.node]], by_id[b].needs
                ):
                    assert not set(x.gpus) & set(eligible(meta[x.node], x.gpus, by_id[b].needs)), (x, b)

    # Backfill never delays a reservation: at each reserved start, with every job started now running
    # to its time limit, the reserved node still has the GPUs.
    ends = {}
    for r in run:
        ends.setdefault(r.node, []).append(
            (r.started_at.timestamp() + r.time_limit if r.time_limit else INF, r.gpu_count)
        )
    for x in result.starts:
        t = by_id[x.job_id].time_limit
        ends.setdefault(x.node, []).append((NOW.timestamp() + t if t else INF, -x.gpus.__len__()))
    for k, res in enumerate(result.reservations):
        assert could_ever_fit(res.gpu_count, [meta[res.node]], by_id[res.job_id].needs)
        at = res.start.timestamp() if res.start is not None else INF
        free_then = len(free[res.node]) + sum(g for end, g in ends.get(res.node, []) if g > 0 and end <= at)
        free_then -= sum(-g for end, g in ends.get(res.node, []) if g < 0 and (end > at or end == INF))
        for earlier in result.reservations[:k]:
            t = by_id[earlier.job_id].time_limit or INF
            begin = earlier.start.timestamp() if earlier.start is not None else INF
            if earlier.node == res.node and begin <= at and (at < begin + t or begin + t == INF):
                free_then -= earlier.gpu_count
        assert free_then >= res.gpu_count, (res, result)

    # Deterministic, whatever the input order.
    assert plan(replace(s, pending=tuple(reversed(jobs))), NOW) == result
    assert [j.id for j in queue_order(s, NOW)] == list(result.order)


@st.composite
def busy_cluster(draw):
    """Two nodes of 4 GPUs whose busy GPUs are all held by running jobs (some without a time limit), and
    a queue with jobs of every age (some waited days) and priority, with and without time limits."""
    nodes, run = [], []
    for name in ("a", "b"):
        used = 0
        for gpus in draw(st.lists(st.integers(1, 2), max_size=3)):
            if used + gpus > 4:
                break
            run.append(
                RunningJob(
                    id=1000 + len(run),
                    node=name,
                    gpu_count=gpus,
                    started_at=NOW - timedelta(seconds=draw(st.integers(0, 3000))),
                    owner=draw(st.integers(1, 3)),
                    time_limit=draw(st.sampled_from([600.0, 3600.0, None])),
                    gpus=tuple(range(used, used + gpus)),
                )
            )
            used += gpus
        nodes.append(NodeFree(name, tuple(range(used, 4))))
    pending = draw(
        st.lists(
            st.builds(
                PendingJob,
                id=st.integers(1, 200),
                gpu_count=st.integers(1, 4),
                priority=st.sampled_from([0, 10, 30]),
                submitted_at=st.integers(0, 3 * 86400).map(lambda s: NOW - timedelta(seconds=s)),
                owner=st.integers(1, 3),
                time_limit=st.sampled_from([60.0, 600.0, 3600.0, None]),
            ),
            max_size=20,
            unique_by=lambda j: j.id,
        )
    )
    return tuple(nodes), tuple(run), tuple(pending)


@settings(max_examples=150, deadline=None)
@given(busy_cluster(), st.sampled_from([None, 1, 2]), st.booleans())
def test_starving_jobs_go_first_and_every_blocked_job_is_reserved(cluster, user_cap, fresh):
    """The guarantees in the README. A job waiting longer than the ageing threshold goes ahead of every
    job that has waited less, whatever its priority. With backfill every job that waits for GPUs, or for
    its user's cap to free, holds a reservation (at an unknown time if it waits for jobs without a time
    limit), unless a job ahead of it took the GPUs for good or for that unknown time; test_invariants checks
    that no job started now, run to its time limit, delays any reservation."""
    nodes, run, pending = cluster
    if fresh:  # urgent work submitted just now does not pass a starving job
        pending += tuple(
            PendingJob(id=300 + i, gpu_count=1, priority=100, submitted_at=NOW) for i in range(3)
        )
    threshold = 86400
    policies = Policies(
        backfill=True, ageing=Ageing(threshold_seconds=threshold), limits=Limits(user_max_concurrent=user_cap)
    )
    result = plan(Snapshot(pending, nodes, run, policies), NOW)
    by_id = {j.id: j for j in pending}
    starving = [j for j in result.order if NOW.timestamp() - by_id[j].since_ts > threshold]
    assert list(result.order[: len(starving)]) == starving
    assert starving == sorted(starving, key=lambda j: (by_id[j].since_ts, j))
    reserved = {r.job_id for r in result.reservations}
    started = {s.job_id for s in result.starts}
    rank = {j: i for i, j in enumerate(result.order)}
    # Booked for good, or for once jobs without a time limit have ended (a time nothing orders further).
    endless = {j for j in started | reserved if by_id[j].time_limit is None}
    endless |= {r.job_id for r in result.reservations if r.start is None}
    for w in result.waits:
        endless_ahead = any(rank[j] < rank[w.job_id] for j in endless)
        if w.reason == Reason.RESOURCES:
            assert w.job_id in reserved or endless_ahead, (w, result)
        if w.reason == Reason.USER_LIMIT:
            owner = by_id[w.job_id].owner
            theirs = [r.time_limit for r in run if r.owner == owner]
            theirs += [by_id[j].time_limit for j in started if by_id[j].owner == owner]
            if all(theirs):  # the cap frees at a known time
                assert w.job_id in reserved or endless_ahead, (w, result)
