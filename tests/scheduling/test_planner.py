"""The pure planner: tables for the rules, hypothesis for the invariants. No database."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gpus.placement import NodeFree
from scheduling.planner import PRIORITY, RESOURCES, PendingJob, Snapshot, Start, plan, queue_key

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def job(id, gpus=1, priority=10, age=0):
    return PendingJob(
        id=id, gpu_count=gpus, priority=priority, submitted_at=NOW - timedelta(seconds=1000 - age)
    )


def test_two_gpus_three_jobs_two_start_and_the_third_waits_for_resources():
    result = plan(Snapshot((job(1), job(2, age=1), job(3, age=2)), (NodeFree("n", (0, 1)),)), NOW)
    assert result.starts == (Start(1, "n", (0,)), Start(2, "n", (1,)))
    assert [(w.job_id, w.reason) for w in result.waits] == [(3, RESOURCES)]


def test_higher_priority_goes_first_then_first_come_first_served():
    jobs = (job(1, priority=0), job(2, priority=20, age=5), job(3, priority=20, age=1), job(4, priority=10))
    result = plan(Snapshot(jobs, (NodeFree("n", (0,)),)), NOW)
    assert result.order == (3, 2, 4, 1)
    assert result.starts == (Start(3, "n", (0,)),)


def test_jobs_behind_a_job_that_does_not_fit_wait_for_priority():
    jobs = (job(1, gpus=2), job(2, gpus=1, age=1))
    result = plan(Snapshot(jobs, (NodeFree("n", (0,)),)), NOW)
    assert result.starts == ()
    assert [(w.job_id, w.reason) for w in result.waits] == [(1, RESOURCES), (2, PRIORITY)]
    assert result.waits[1].detail == "behind job 1"


def test_a_multi_gpu_job_gets_gpus_on_one_node():
    result = plan(Snapshot((job(1, gpus=2),), (NodeFree("a", (0,)), NodeFree("b", (4, 5)))), NOW)
    assert result.starts == (Start(1, "b", (4, 5)),)


def test_no_nodes_every_job_waits_with_a_reason():
    result = plan(Snapshot((job(1), job(2, age=1)), ()), NOW)
    assert {w.job_id for w in result.waits} == {1, 2}


# --- invariants ---------------------------------------------------------------------------------

pending_jobs = st.lists(
    st.builds(
        PendingJob,
        id=st.integers(1, 10_000),
        gpu_count=st.integers(1, 4),
        priority=st.sampled_from([-10, 0, 10, 20, 30]),
        submitted_at=st.integers(0, 5000).map(lambda s: NOW - timedelta(seconds=s)),
    ),
    max_size=40,
    unique_by=lambda j: j.id,
)
node_sets = st.lists(
    st.tuples(st.text("abcdefgh", min_size=1, max_size=3), st.sets(st.integers(0, 7), max_size=8)),
    max_size=5,
    unique_by=lambda n: n[0],
).map(lambda nodes: tuple(NodeFree(name, tuple(sorted(free))) for name, free in nodes))


@settings(max_examples=300, deadline=None)
@given(pending_jobs, node_sets)
def test_invariants(jobs, nodes):
    snapshot = Snapshot(tuple(jobs), nodes)
    result = plan(snapshot, NOW)
    by_id = {j.id: j for j in jobs}
    free = {n.name: set(n.free) for n in nodes}

    # Every pending job either starts or waits with a reason, never both.
    started = [s.job_id for s in result.starts]
    waiting = [w.job_id for w in result.waits]
    assert sorted(started + waiting) == sorted(by_id)
    assert all(w.reason in (PRIORITY, RESOURCES) and w.detail for w in result.waits)

    # GPUs are never over-allocated: each start gets exactly its count of free GPUs on one node, and no
    # GPU goes to two jobs.
    given_out: set[tuple[str, int]] = set()
    for start in result.starts:
        assert len(start.gpus) == by_id[start.job_id].gpu_count
        assert set(start.gpus) <= free[start.node]
        pairs = {(start.node, g) for g in start.gpus}
        assert not pairs & given_out
        given_out |= pairs

    # Strict order: the started jobs are a prefix of the queue order.
    assert tuple(started) == result.order[: len(started)]
    assert list(result.order) == [j.id for j in sorted(jobs, key=queue_key)]

    # Deterministic.
    assert plan(Snapshot(tuple(reversed(jobs)), nodes), NOW) == result
