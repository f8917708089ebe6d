"""Gang jobs in the pure planner: all parts start together on distinct nodes or none does, and backfill
and reservations treat them as one job. Tables, no database."""

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gpus.placement import GpuSpec, Needs, NodeFree
from scheduling.estimates import estimate_starts
from scheduling.planner import INF, PendingJob, Policies, Reason, RunningJob, Snapshot, Start, plan

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BACKFILL = Policies(backfill=True)
STRICT = Policies()


def job(id, gpus=1, nodes=1, age=0, **kw):
    return PendingJob(
        id=id,
        gpu_count=gpus,
        nodes=nodes,
        priority=10,
        submitted_at=NOW - timedelta(seconds=1000 - age),
        **kw,
    )


def nodes(**free):
    return tuple(NodeFree(name, tuple(gpus)) for name, gpus in sorted(free.items()))


def running_gang(per_node, seconds_ago, time_limit):
    """Job 9, a gang running on nodes a and b (rank 0 on a)."""
    return RunningJob(
        id=9,
        node="a",
        gpu_count=2 * per_node,
        started_at=NOW - timedelta(seconds=seconds_ago),
        time_limit=time_limit,
        parts=(("a", per_node), ("b", per_node)),
    )


def snap(*jobs, free, run=(), policies=STRICT):
    return Snapshot(pending=tuple(jobs), nodes=free, running=tuple(run), policies=policies)


def test_a_gang_starts_with_one_part_on_each_of_distinct_nodes():
    result = plan(snap(job(1, gpus=4, nodes=2), free=nodes(a=(0, 1), b=(0, 1, 2))), NOW)
    # Best fit: the tightest node first (rank 0), and each part on its own node.
    assert result.starts == (Start(1, "a", (0, 1), (("a", (0, 1)), ("b", (0, 1)))),)


def test_a_gang_starts_all_parts_or_none():
    result = plan(snap(job(1, gpus=4, nodes=2), free=nodes(a=(0, 1), b=(0,))), NOW)
    assert result.starts == ()
    wait = result.waits[0]
    assert wait.reason == Reason.RESOURCES
    assert wait.detail == "needs 2 GPU(s) on each of 2 nodes at once; nodes with that many free: 1"


def test_a_gang_never_puts_two_parts_on_one_node():
    result = plan(snap(job(1, gpus=4, nodes=2), free=nodes(a=(0, 1, 2, 3))), NOW)
    assert result.starts == () and result.waits[0].reason == Reason.RESOURCES


def test_a_started_gang_takes_its_gpus_on_every_node_from_the_jobs_behind():
    jobs = (job(1, gpus=2, nodes=2), job(2, gpus=1, age=1), job(3, gpus=1, age=2))
    result = plan(snap(*jobs, free=nodes(a=(0,), b=(0, 1))), NOW)
    assert result.starts == (Start(1, "a", (0,), (("a", (0,)), ("b", (0,)))), Start(2, "b", (1,)))
    assert {w.job_id: w.reason for w in result.waits} == {3: Reason.RESOURCES}


def test_strict_order_a_gang_behind_a_waiting_job_starts_on_gpus_that_job_could_not_use():
    # Job 1 wants node a only (label zone=x) and does not fit: it holds a's free GPU. The gang behind it
    # starts on b and c, which job 1 could never use.
    cluster = (
        NodeFree("a", (0,), {0: GpuSpec(), 1: GpuSpec()}, {"zone": "x"}),
        NodeFree("b", (0,), {0: GpuSpec()}),
        NodeFree("c", (0,), {0: GpuSpec()}),
    )
    jobs = (job(1, gpus=2, needs=Needs.of(labels={"zone": "x"})), job(2, gpus=2, nodes=2, age=1))
    result = plan(snap(*jobs, free=cluster), NOW)
    assert result.starts == (Start(2, "b", (0,), (("b", (0,)), ("c", (0,)))),)
    # A gang that could only start with a's held GPU waits behind job 1.
    jobs = (jobs[0], job(3, gpus=3, nodes=3, age=1))
    result = plan(snap(*jobs, free=cluster), NOW)
    assert result.starts == () and {w.job_id: w.reason for w in result.waits}[3] == Reason.PRIORITY


def test_strict_order_a_waiting_gang_holds_the_free_gpus_it_could_use():
    jobs = (job(1, gpus=4, nodes=2), job(2, gpus=1, age=1))
    result = plan(snap(*jobs, free=nodes(a=(0, 1), b=(0,))), NOW)
    assert result.starts == ()
    assert {w.job_id: w.reason for w in result.waits} == {1: Reason.RESOURCES, 2: Reason.PRIORITY}


def test_backfill_reserves_a_gang_from_when_all_its_parts_fit_and_protects_it():
    # b is busy for 100 s more; a is free. The gang (2 × 2) is reserved from +100 s on a and b.
    run = [RunningJob(id=9, node="b", gpu_count=2, started_at=NOW - timedelta(seconds=500), time_limit=600)]
    jobs = (
        job(1, gpus=4, nodes=2, time_limit=3600),
        job(2, gpus=2, age=1, time_limit=50),  # ends before the reservation: backfills on a
        job(3, gpus=2, age=2, time_limit=500),  # would delay the gang on a: waits
    )
    result = plan(snap(*jobs, free=nodes(a=(0, 1), b=()), run=run, policies=BACKFILL), NOW)
    assert [s.job_id for s in result.starts] == [2]
    (reservation,) = [r for r in result.reservations if r.job_id == 1]
    assert reservation.nodes == ("a", "b") and reservation.start == NOW + timedelta(seconds=100)
    assert reservation.gpu_count == 4
    assert {w.job_id: w.reason for w in result.waits} == {1: Reason.RESOURCES, 3: Reason.RESOURCES}


def test_a_gangs_reservation_is_kept_across_plans_and_a_job_ending_early_does_not_push_it_later():
    # Nodes a and b of 2 GPUs. Gang 50 holds one GPU of each until +100, gang 51 the other until +300.
    # Gang 1 (2 × 2, 100 s) is reserved at +300; gang 2 (2 × 1, 200 s), behind it, fits before: +100.
    def holder(id, ends):
        return RunningJob(
            id, "a", 2, NOW - timedelta(seconds=10), time_limit=ends + 10, parts=(("a", 1), ("b", 1))
        )

    first_gang, second_gang = (
        job(1, gpus=4, nodes=2, time_limit=100),
        job(2, gpus=2, nodes=2, age=1, time_limit=200),
    )
    first = plan(
        snap(
            first_gang,
            second_gang,
            free=nodes(a=(), b=()),
            run=[holder(50, 100), holder(51, 300)],
            policies=BACKFILL,
        ),
        NOW,
    )
    assert {r.job_id: (r.nodes, r.start) for r in first.reservations} == {
        1: (("a", "b"), NOW + timedelta(seconds=300)),
        2: (("a", "b"), NOW + timedelta(seconds=100)),
    }
    # Gang 51 ends early, at +50. Planned afresh, gang 1 would take +100 and push gang 2 to +200; kept,
    # gang 1 keeps +300 and gang 2, which fits now without delaying it, starts.
    later = Snapshot(
        (first_gang, second_gang),
        nodes(a=(1,), b=(1,)),
        (holder(50, 100),),
        BACKFILL,
        previous_reservations=first.reservations,
    )
    result = plan(later, NOW + timedelta(seconds=50))
    assert result.starts == (Start(2, "a", (1,), (("a", (1,)), ("b", (1,)))),)
    assert {r.job_id: (r.nodes, r.start) for r in result.reservations} == {
        1: (("a", "b"), NOW + timedelta(seconds=300))
    }


def test_backfill_counts_a_running_gangs_gpus_coming_back_on_each_of_its_nodes():
    run = [running_gang(per_node=2, seconds_ago=100, time_limit=400)]
    jobs = (job(1, gpus=2, time_limit=60), job(2, gpus=2, nodes=2, age=1, time_limit=60))
    result = plan(snap(*jobs, free=nodes(a=(), b=()), run=run, policies=BACKFILL), NOW)
    back = NOW + timedelta(seconds=300)
    starts = {r.job_id: (r.nodes, r.start) for r in result.reservations}
    # Both nodes are free again at +300 s; job 1 (ahead) takes node a for 60 s, so the gang follows it.
    assert starts == {1: ((), back), 2: (("a", "b"), back + timedelta(seconds=60))}


def test_a_later_small_job_cannot_take_what_a_started_gang_booked_under_backfill():
    jobs = (job(1, gpus=2, nodes=2, time_limit=60), job(2, gpus=1, age=1, time_limit=60))
    result = plan(snap(*jobs, free=nodes(a=(0,), b=(0,)), policies=BACKFILL), NOW)
    assert [s.job_id for s in result.starts] == [1]
    assert result.starts[0].parts == (("a", (0,)), ("b", (0,)))


def test_estimates_see_a_gang_give_back_and_take_gpus_on_each_of_its_nodes():
    gang = running_gang(per_node=1, seconds_ago=40, time_limit=100)
    pending = (job(1, gpus=2, nodes=2, time_limit=50), job(2, gpus=1, age=1, time_limit=50))
    snapshot = Snapshot(pending=pending, nodes=nodes(a=(), b=()), running=(gang,))
    found = estimate_starts(snapshot, NOW, depth=10, known={}, grace=10.0)
    # At the latest: the running gang ends at +60 s (+ 10 s grace) on both nodes; the waiting gang
    # then takes both for 50 s (+ grace), and job 2 follows it.
    assert found[1].latest == NOW + timedelta(seconds=70)
    assert found[2].latest == NOW + timedelta(seconds=130)


@settings(max_examples=150, deadline=None)
@given(
    free=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    shapes=st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3)), min_size=1, max_size=6),
    backfill=st.booleans(),
)
def test_every_gang_start_is_whole_on_distinct_nodes_and_no_gpu_is_given_twice(free, shapes, backfill):
    cluster = tuple(NodeFree(f"n{i}", tuple(range(k))) for i, k in enumerate(free))
    jobs = [job(i, gpus=n * per, nodes=n, age=i, time_limit=60) for i, (n, per) in enumerate(shapes, 1)]
    result = plan(snap(*jobs, free=cluster, policies=BACKFILL if backfill else STRICT), NOW)
    wanted = {j.id: j for j in jobs}
    given_out = []
    for start in result.starts:
        gang = wanted[start.job_id]
        parts = start.parts or ((start.node, start.gpus),)
        assert len(parts) == gang.nodes and len({node for node, _ in parts}) == gang.nodes
        assert all(len(gpus) == gang.per_node for _, gpus in parts)
        assert (start.node, start.gpus) == parts[0]
        given_out += [(node, g) for node, gpus in parts for g in gpus]
    assert len(given_out) == len(set(given_out))
    free_now = {(n.name, g) for n in cluster for g in n.free}
    assert set(given_out) <= free_now


@st.composite
def gang_workload(draw):
    """Three nodes of 4 GPUs, partly held by running jobs (some of them gangs, some without a time limit),
    and a queue of single-node and gang jobs."""
    used = {"a": 0, "b": 0, "c": 0}
    run = []
    for i, (width, per) in enumerate(
        draw(st.lists(st.tuples(st.integers(1, 2), st.integers(1, 2)), max_size=4))
    ):
        names = [n for n in sorted(used) if used[n] + per <= 4][:width]
        if len(names) < width:
            break
        for n in names:
            used[n] += per
        run.append(
            RunningJob(
                id=1000 + i,
                node=names[0],
                gpu_count=per * width,
                started_at=NOW - timedelta(seconds=draw(st.integers(0, 3000))),
                time_limit=draw(st.sampled_from([600.0, 3600.0, None])),
                parts=tuple((n, per) for n in names) if width > 1 else (),
            )
        )
    cluster = tuple(NodeFree(n, tuple(range(used[n], 4))) for n in sorted(used))
    shapes = draw(
        st.lists(st.tuples(st.integers(1, 3), st.integers(1, 3), st.sampled_from([60.0, 900.0, None])))
    )
    jobs = tuple(
        job(i, gpus=n * per, nodes=n, age=i, time_limit=limit)
        for i, (n, per, limit) in enumerate(shapes[:12], 1)
    )
    return cluster, tuple(run), jobs


@settings(max_examples=150, deadline=None)
@given(gang_workload())
def test_backfill_never_delays_a_reservation_of_any_part_of_a_gang(workload):
    """At each reserved start, on each node it reserved, with every job started now running to its time
    limit and the reservations made before it, the node still has the GPUs (gangs: on all its nodes)."""
    cluster, run, jobs = workload
    result = plan(snap(*jobs, free=cluster, run=run, policies=BACKFILL), NOW)
    by_id = {j.id: j for j in jobs}
    now = NOW.timestamp()
    events = {n.name: [] for n in cluster}  # (time, GPUs): + back, - taken
    for r in run:
        end = r.started_at.timestamp() + r.time_limit if r.time_limit else INF
        for node, count in r.parts or ((r.node, r.gpu_count),):
            events[node].append((end, count))
    for x in result.starts:
        limit = by_id[x.job_id].time_limit
        for node, gpus in x.parts or ((x.node, x.gpus),):
            events[node] += [(now, -len(gpus)), (now + limit if limit else INF, len(gpus))]
    free_now = {n.name: len(n.free) for n in cluster}
    for res in result.reservations:
        wanted = by_id[res.job_id]
        at = res.start.timestamp() if res.start is not None else INF
        end = at + wanted.time_limit if wanted.time_limit else INF
        for node in res.nodes or (res.node,):
            # The lowest level over [at, end): what is free then, before this reservation takes its share.
            points = sorted({at, *(t for t, _ in events[node] if at < t < end)})
            lowest = min(free_now[node] + sum(g for t, g in events[node] if t <= p) for p in points)
            assert lowest >= wanted.per_node, (res, result)
            events[node] += [(at, -wanted.per_node), (end, wanted.per_node)]
