"""The what-if simulator (pure): a hand-made trace whose waits, out-of-order starts, utilisation and
fairness are worked out by hand, under strict FIFO and backfill; trace CSV parsing; the planner's
ordering options within a priority."""

import re
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gpus.placement import NodeFree
from scheduling.planner import Ageing, PendingJob, Policies, Snapshot, plan
from scheduling.simulator import Setup, TraceJob, jain, measure, percentile, replay
from scheduling.traces import TraceError, from_openb, openb_node_shape, parse_csv, to_csv

NODE = [("a", 3)]
# One 3-GPU node. Job 1 holds 2 GPUs 0-100; job 2 needs all 3 (from 100 to 200); job 3 (1 GPU, limit 50)
# fits before job 2's reservation, job 4 (limit 200) does not.
TRACE = [
    TraceJob(1, 0, 2, 100, "xavier", time_limit=100),
    TraceJob(2, 10, 3, 100, "yann", time_limit=100),
    TraceJob(3, 20, 1, 50, "zoe", time_limit=50),
    TraceJob(4, 30, 1, 50, "zoe", time_limit=200),
]


def waits(jobs, out):
    return {j.id: out.start[j.id] - j.submit for j in jobs}


def test_strict_fifo_keeps_every_job_behind_the_one_that_does_not_fit():
    out = replay(TRACE, Setup(Policies()), NODE)
    assert waits(TRACE, out) == {1: 0, 2: 90, 3: 180, 4: 170}
    assert out.out_of_order == 0
    figures = measure(TRACE, out, NODE)
    assert figures["utilization"] == pytest.approx(600 / (3 * 250))  # GPU-seconds / (GPUs × 0..250 s)
    assert figures["wait"]["mean"] == pytest.approx(110)
    assert figures["wait_by_gpus"]["1"] == {"jobs": 2, "mean": 175, "p95": 180, "max": 180}
    assert figures["wait_by_gpus"]["2-4"] == {"jobs": 2, "mean": 45, "p95": 90, "max": 90}
    assert figures["wait_by_gpus"][">8"]["jobs"] == 0
    assert figures["wait_by_user"]["zoe"]["mean"] == 175
    # Users' mean bounded slowdowns: xavier 1, yann 1.9, zoe (4.6 + 4.4) / 2 = 4.5.
    assert figures["jain"] == pytest.approx(7.4**2 / (3 * (1 + 1.9**2 + 4.5**2)))


def test_backfill_starts_the_short_job_early_and_counts_it_out_of_order():
    out = replay(TRACE, Setup(Policies(backfill=True)), NODE)
    assert waits(TRACE, out) == {1: 0, 2: 90, 3: 0, 4: 170}  # job 4, run to its limit, would delay job 2
    assert out.out_of_order == 1  # job 3 passed job 2
    figures = measure(TRACE, out, NODE)
    assert figures["out_of_order"] == 1
    assert figures["jain"] == pytest.approx(5.6**2 / (3 * (1 + 1.9**2 + 2.7**2)))


def test_a_job_runs_to_its_time_limit_at_most_and_one_larger_than_any_node_is_left_out():
    jobs = [
        TraceJob(1, 0, 1, 500, "u", time_limit=60),
        TraceJob(2, 0, 4, 10, "u"),
        TraceJob(3, 5, 1, 10, "u"),
    ]
    out = replay(jobs, Setup(Policies()), [("a", 1)])
    assert out.end[1] == 60 and out.start[3] == 60
    assert out.unplaceable == {2}
    assert measure(jobs, out, [("a", 1)])["unplaceable"] == 1


def test_fair_share_lets_a_light_user_pass_a_heavy_one():
    jobs = [
        TraceJob(1, 0, 1, 1000, "heavy"),
        TraceJob(2, 1, 1, 10, "heavy"),
        TraceJob(3, 2, 1, 10, "light"),
    ]
    fifo = replay(jobs, Setup(Policies()), [("a", 1)])
    fair = replay(jobs, Setup(Policies(fair_share=True)), [("a", 1)])
    assert fifo.start[2] < fifo.start[3]
    assert fair.start[3] < fair.start[2]


def test_expired_jobs_are_counted_and_never_start():
    jobs = [TraceJob(1, 0, 1, 1000, "u"), TraceJob(2, 1, 1, 10, "u")]
    out = replay(jobs, Setup(Policies(expiry_seconds=100)), [("a", 1)])
    assert 2 not in out.start and out.expired == {2}


def test_jain_and_percentile():
    assert jain([1, 1, 1]) == 1.0
    assert jain([1, 0, 0, 0]) == 0.25
    assert jain([]) == 1.0
    assert percentile([5, 1, 3, 2, 4], 95) == 5 and percentile([5, 1, 3, 2, 4], 50) == 3
    assert percentile([], 95) == 0.0


def test_progress_is_reported_up_to_one():
    seen = []
    replay(TRACE, Setup(Policies()), NODE, progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)


# --- the public openb trace (Alibaba cluster-trace-gpu-v2023): its rules, on a hand-made pod list ----

OPENB_HEADER = (
    "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,"
)
OPENB_HEADER += "scheduled_time\n"
OPENB = OPENB_HEADER + (
    "p0,1000,1024,0,0,,BE,Running,100,500,100\n"  # no GPU: left out
    "p1,1000,1024,1,1000,,LS,Succeeded,200,1200,260\n"  # waited 60 s, ran 940 s
    "p2,1000,1024,1,460,,BE,Failed,300,400,300\n"  # 0.46 of a GPU: one whole GPU
    "p3,1000,1024,8,1000,,Burstable,Pending,310,900,\n"  # never scheduled: left out
    "p4,1000,1024,2,1000,,LS,Running,150,2000,150\n"  # still running at the cut (the last deletion)
    "p5,1000,1024,4,1000,,LS,Running,50,,60\n"  # no deletion time: left out
    "p6,1000,1024,1,1000,,,Succeeded,400,700,400\n"  # no QoS class
    "p7,1000,1024,1,1000,,LS,Succeeded,10,240,10\n"
)


def shape(jobs):
    return [(j.id, j.submit, j.gpus, j.runtime, j.user, j.team, j.priority, j.time_limit) for j in jobs]


def test_an_openb_pod_list_becomes_gpu_jobs_by_submission_with_the_qos_class_as_user():
    jobs, counts = from_openb(OPENB)
    assert shape(jobs) == [
        (1, 10, 1, 230, "LS", None, 10, None),
        (2, 150, 2, 1850, "LS", None, 10, None),
        (3, 200, 1, 940, "LS", None, 10, None),
        (4, 300, 1, 100, "BE", None, 10, None),
        (5, 400, 1, 300, "unknown", None, 10, None),
    ]
    assert counts == {"no_gpu": 1, "never_started": 1, "no_end": 1, "fractional_whole": 1, "cut_at_end": 1}


def test_an_openb_window_carries_pods_still_there_over_with_the_time_they_have_left():
    jobs, counts = from_openb(OPENB, start=250)
    assert [(j.submit, j.gpus, j.runtime) for j in jobs] == [
        (0, 1, 940),  # ties keep the pod list's order
        (0, 2, 1750),
        (50, 1, 100),
        (150, 1, 300),
    ]
    assert counts["before_start"] == 1 and counts["carried_over"] == 2


def test_openb_pods_sharing_a_gpu_can_be_left_out():
    jobs, counts = from_openb(OPENB, fractional="drop")
    assert [j.runtime for j in jobs] == [230, 1850, 940, 300]
    assert counts["fractional_dropped"] == 1 and "fractional_whole" not in counts


def test_openb_jobs_can_all_get_the_default_time_limit_and_those_that_ran_longer_are_counted():
    jobs, counts = from_openb(OPENB, time_limit=900)
    assert {j.time_limit for j in jobs} == {900}
    assert [j.runtime for j in jobs] == [230, 1850, 940, 100, 300]  # the simulator cuts them at 900
    assert counts["over_limit"] == 2


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,num_gpu,gpu_milli,qos,creation_time,deletion_time\n", "missing column(s) scheduled_time"),
        (OPENB_HEADER + "p,1,1,x,1000,,LS,Running,0,5,0\n", "row 2, num_gpu: 'x' is not an integer"),
        (OPENB_HEADER + "p,1,1,1,1500,,LS,Running,0,5,0\n", "row 2, gpu_milli: 1500 is outside 0..1000"),
        (OPENB_HEADER + "p,1,1,1,1000,,LS,Running,soon,5,0\n", "row 2, creation_time: 'soon' is not"),
        (OPENB_HEADER + "p,1,1,1,1000,,LS,Running,,5,0\n", "row 2, creation_time: missing"),
        (OPENB_HEADER + "p,1,1,1,1000,,LS\n", "row 2: expected 11 fields"),
    ],
)
def test_a_bad_openb_pod_list_names_its_row_and_column(text, message):
    with pytest.raises(TraceError, match=re.escape(message)):
        from_openb(text)


def test_an_openb_cluster_shrinks_keeping_its_mix_of_node_sizes():
    nodes = "sn,cpu_milli,memory_mib,gpu,model\n" + "".join(
        f"n{i},1,1,{gpus},G\n" for i, gpus in enumerate([8] * 20 + [2] * 9 + [0] * 5 + [4])
    )
    assert openb_node_shape(nodes) == [8] * 20 + [4] + [2] * 9
    assert openb_node_shape(nodes, scale=10) == [8, 8, 4, 2]
    with pytest.raises(ValueError, match="scale: at least 1, not 0"):
        openb_node_shape(nodes, scale=0)


POD = st.tuples(
    st.sampled_from([0, 1, 1, 1, 2, 4, 8]),  # GPUs
    st.sampled_from([1000, 1000, 500]),  # thousandths of a GPU
    st.integers(0, 5000),  # created
    st.integers(0, 600),  # waited
    st.one_of(st.none(), st.integers(0, 3000)),  # ran (None: never scheduled)
    st.sampled_from(["LS", "BE"]),
)


@settings(max_examples=60, deadline=None)
@given(pods=st.lists(POD, max_size=40), start=st.sampled_from([0, 1000]))
def test_an_openb_trace_replays_within_the_cluster_and_strict_fifo_starts_in_order(pods, start):
    rows = []
    for i, (gpus, milli, created, waited, ran, qos) in enumerate(pods):
        scheduled = "" if ran is None else created + waited
        deleted = created + waited + (ran or 0)
        rows.append(f"p{i},1,1,{gpus},{milli},,{qos},Running,{created},{deleted},{scheduled}\n")
    jobs, _ = from_openb(OPENB_HEADER + "".join(rows), start=start)
    kept = [p for p in pods if p[0] and p[4] is not None and p[2] + p[3] + p[4] > start]
    assert sum(j.gpus for j in jobs) == sum(p[0] for p in kept)
    nodes = [("a", 8), ("b", 4), ("c", 2)]
    for policies in (Policies(), Policies(backfill=True)):
        out = replay(jobs, Setup(policies), nodes)
        assert set(out.start) == {j.id for j in jobs}  # no limits, no expiry: every job runs
        for j in jobs:
            assert out.start[j.id] >= j.submit and out.end[j.id] == out.start[j.id] + j.runtime
        events = sorted([(out.end[j.id], -j.gpus) for j in jobs] + [(out.start[j.id], j.gpus) for j in jobs])
        used = 0
        for _, change in events:  # ends before starts at the same time
            used += change
            assert used <= 14
    fifo = replay(jobs, Setup(), nodes)
    assert fifo.out_of_order == 0
    order = sorted(jobs, key=lambda j: (j.submit, j.id))
    assert [fifo.start[j.id] for j in order] == sorted(fifo.start[j.id] for j in order)


# --- trace files -----------------------------------------------------------------------------------


def test_a_trace_reads_back_what_was_written():
    jobs, epoch = parse_csv(to_csv(TRACE), max_jobs=10)
    assert epoch is None
    assert [(j.submit, j.gpus, j.runtime, j.user, j.time_limit, j.priority) for j in jobs] == [
        (j.submit, j.gpus, j.runtime, j.user, j.time_limit, j.priority) for j in TRACE
    ]


def test_a_trace_keeps_times_of_a_long_trace_to_the_second():
    # Six significant digits would write both as 3.39896e+06 and merge their order with their times.
    jobs = [TraceJob(1, 3398961, 1, 3033496, "a"), TraceJob(2, 3398964, 1, 12537496.5, "b")]
    back, _ = parse_csv(to_csv(jobs), max_jobs=10)
    assert [(j.submit, j.runtime) for j in back] == [(3398961, 3033496), (3398964, 12537496.5)]


def test_a_trace_with_iso_times_counts_from_its_first_submission():
    text = "submit_time,gpus,runtime,user\n2026-01-01T00:01:00Z,1,5,a\n2026-01-01T00:00:00Z,2,5,b\n"
    jobs, epoch = parse_csv(text, max_jobs=10)
    assert epoch == datetime(2026, 1, 1, tzinfo=UTC)
    assert [j.submit for j in jobs] == [60, 0]


@pytest.mark.parametrize(
    "text, message",
    [
        ("submit_time,gpus,user\n", "missing column(s) runtime"),
        ("submit_time,gpus,runtime,user,colour\n", "unknown column(s) colour"),
        ("submit_time,gpus,runtime,user\n0,two,5,a\n", "row 2, gpus: 'two' is not an integer"),
        ("submit_time,gpus,runtime,user\n0,0,5,a\n", "row 2, gpus: 0 is outside 1..10000"),
        ("submit_time,gpus,runtime,user\n0,1,nan,a\n", "row 2, runtime: nan is outside"),
        ("submit_time,gpus,runtime,user\n0,1,5\n", "row 2: expected 4 fields"),
        ("submit_time,gpus,runtime,user\nyesterday,1,5,a\n", "row 2, submit_time: 'yesterday' is neither"),
        ("submit_time,gpus,runtime,user\n0,1,5,a\n0,1,5,a\n0,1,5,a\n", "row 4: more than 2 jobs"),
        ("submit_time,gpus,runtime,user\n2026-01-01T00:00:00,1,5,a\n", "need a time zone"),
    ],
)
def test_a_bad_trace_names_its_row_and_column(text, message):
    with pytest.raises(TraceError, match=None) as caught:
        parse_csv(text, max_jobs=2)
    assert message in str(caught.value)


# --- ordering options in the planner -------------------------------------------------------------

NOW = datetime(2026, 11, 23, 12, tzinfo=UTC)


def first_started(policies, pending):
    snap = Snapshot(pending=tuple(pending), nodes=(NodeFree("a", (0,)),), policies=policies)
    return [s.job_id for s in plan(snap, NOW).starts]


OLD_LONG = PendingJob(1, 1, 10, NOW - timedelta(hours=2), time_limit=86400)
NEW_SHORT = PendingJob(2, 1, 10, NOW - timedelta(hours=1), time_limit=600)
HIGHER = PendingJob(3, 1, 20, NOW, time_limit=86400)


def test_fifo_within_a_priority_by_default():
    assert first_started(Policies(), [OLD_LONG, NEW_SHORT]) == [1]


def test_shortest_time_limit_first_within_a_priority_but_never_across_priorities():
    sjf = Policies(within_priority="shortest_limit")
    assert first_started(sjf, [OLD_LONG, NEW_SHORT]) == [2]
    assert first_started(sjf, [OLD_LONG, NEW_SHORT, HIGHER]) == [3]
    no_limit = replace(NEW_SHORT, time_limit=None)
    assert first_started(sjf, [OLD_LONG, no_limit]) == [1]  # a job without a limit goes last


def test_shortest_limit_first_compares_tiers_under_ageing_not_its_fractional_boost():
    sjf = Policies(within_priority="shortest_limit", ageing=Ageing(86400 * 30, 0.1, 5))
    assert first_started(sjf, [OLD_LONG, NEW_SHORT]) == [2]  # boosts 0.2 and 0.1: the same tier


def test_fewest_gpus_first_within_a_priority():
    wide = PendingJob(1, 2, 10, NOW - timedelta(hours=2))
    narrow = PendingJob(2, 1, 10, NOW - timedelta(hours=1))
    snap = Snapshot(pending=(wide, narrow), nodes=(NodeFree("a", (0, 1)),))
    assert [s.job_id for s in plan(snap, NOW).starts] == [1]
    snap = replace(snap, policies=Policies(within_priority="fewest_gpus"))
    assert [s.job_id for s in plan(snap, NOW).starts] == [2]


def test_the_ordering_policy_reaches_the_planner_and_refuses_an_unknown_order():
    from django.core.exceptions import ValidationError

    from scheduling.policies import to_planner, validate_config

    config = validate_config("ordering", {"within_priority": "shortest_limit"})
    assert to_planner({"ordering": config}).within_priority == "shortest_limit"
    assert to_planner({}).within_priority == "fifo"
    with pytest.raises(ValidationError):
        validate_config("ordering", {"within_priority": "random"})
