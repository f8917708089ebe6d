"""Reservations that hold across plans, and the starvation guarantee with them (issue 13 items 2 and 3).

Pure planner: a table of the cases the issue saw, then hypothesis over random traces replayed plan after
plan (each plan given the previous one's reservations, as the tick does). No database."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from gpus.placement import GpuSpec, Needs, NodeFree
from scheduling.estimates import Known, estimate_starts
from scheduling.planner import (
    INF,
    Ageing,
    Limits,
    PendingJob,
    Policies,
    Reason,
    RunningJob,
    Snapshot,
    Start,
    plan,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
BACKFILL = Policies(backfill=True)


def at(seconds: float) -> datetime:
    return NOW + timedelta(seconds=seconds)


def waiting(id, gpus=1, priority=10, submitted=-1000, time_limit=None, **kw):
    return PendingJob(
        id=id, gpu_count=gpus, priority=priority, submitted_at=at(submitted), time_limit=time_limit, **kw
    )


def running(id, ends, gpus=1, node="n", started=-10, **kw):
    """A job running since `started` whose time limit ends it at `ends` (None: no time limit)."""
    limit = None if ends is None else ends - started
    return RunningJob(id=id, node=node, gpu_count=gpus, started_at=at(started), time_limit=limit, **kw)


def two_gpus(*pending, run=(), free=(), policies=BACKFILL, previous=()):
    return Snapshot(
        tuple(pending), (NodeFree("n", tuple(free)),), tuple(run), policies, previous_reservations=previous
    )


def reserved(result):
    """Each reservation as (job, seconds after NOW or None for an unknown time)."""
    return {
        r.job_id: None if r.start is None else (r.start - NOW).total_seconds() for r in result.reservations
    }


# --- what the issue saw -------------------------------------------------------------------------------------


def test_a_job_finishing_early_does_not_push_a_reservation_later():
    # Node of 2 GPUs: job 50 holds one until +100, job 51 the other until +300. Job 1 (2 GPUs, 100 s) is
    # reserved at +300; job 2 (1 GPU, 200 s) fits before it, at +100.
    run = [running(50, ends=100), running(51, ends=300)]
    big, small = waiting(1, gpus=2, time_limit=100), waiting(2, submitted=-900, time_limit=200)
    first = plan(two_gpus(big, small, run=run), NOW)
    assert reserved(first) == {1: 300, 2: 100}
    # Job 51 ends early, at +50. Planned afresh, job 1 takes +100 and pushes job 2 to +200 (what the
    # issue saw: reserved jobs starting after their earliest reservation).
    later = two_gpus(big, small, run=run[:1], free=(1,))
    assert reserved(plan(later, at(50))) == {1: 100, 2: 200}
    # Kept: job 1 stays at +300 (it may move earlier only into time nobody was promised), and job 2,
    # which fits now without delaying job 1, starts at once.
    kept = plan(replace(later, previous_reservations=first.reservations), at(50))
    assert kept.starts == (Start(2, "n", (1,)),)
    assert reserved(kept) == {1: 300}


def test_estimated_starts_keep_reservations_from_one_simulated_plan_to_the_next():
    # The case above, simulated: history says job 51 ends at +40. Each simulated plan keeps the last
    # one's reservations, as ticks do, so job 2 is expected to start then, not pushed to +200.
    run = [running(50, ends=100), running(51, ends=300)]
    big, small = waiting(1, gpus=2, time_limit=100), waiting(2, submitted=-900, time_limit=200)
    expected = estimate_starts(two_gpus(big, small, run=run), NOW, depth=10, known={51: Known(50)}, grace=0)
    assert (expected[2].start, expected[1].start) == (at(40), at(240))


def b_frees_early(second_job, b_labels=None):
    """Nodes a and b of one GPU, busy until +100 and +300: job 1 (500 s) and, behind it, `second_job`
    (job 2) are planned at 0, then at +50, once job 51 ended early and freed b. Returns each plan's
    reservations as {job: (node, seconds after NOW)}, and the second plan's starts."""
    one = {0: GpuSpec()}

    def nodes(b):
        return (NodeFree("a", (), one), NodeFree("b", b, one, b_labels or {}))

    run = (running(50, ends=100, node="a"), running(51, ends=300, node="b"))
    jobs = (waiting(1, time_limit=500), second_job)
    first = plan(Snapshot(jobs, nodes(()), run, BACKFILL), NOW)
    later = plan(
        Snapshot(jobs, nodes((0,)), run[:1], BACKFILL, previous_reservations=first.reservations), at(50)
    )
    slots = [{r.job_id: (r.node, seconds(r)) for r in p.reservations} for p in (first, later)]
    return slots[0], slots[1], later.starts


def test_a_kept_slot_of_a_job_behind_moves_to_another_node_so_that_a_job_ahead_starts_early():
    # Job 1 is reserved on a at +100; job 2 (200 s) on b at +300. When b frees at +50, job 2's slot on b
    # is in job 1's way, but job 2 can have a's GPU from +100 instead, earlier than promised: job 1
    # starts now on b and job 2 moves to a. (Pinned to b, job 2's slot kept job 1 waiting until +100
    # while job 2, behind it, started first.)
    first, second, starts = b_frees_early(waiting(2, submitted=-900, time_limit=200))
    assert first == {1: ("a", 100), 2: ("b", 300)}
    assert starts == (Start(1, "b", (0,)),)
    assert second == {2: ("a", 100)}


def test_a_kept_slot_is_not_moved_where_its_job_cannot_go():
    # As above, but job 2 needs zone x, which only b has: its slot cannot move to a, so job 1 keeps its
    # promise (a at +100) and job 2, which fits on b before then, starts.
    b_only = Needs(labels=(("zone", "x"),))
    first, second, starts = b_frees_early(
        waiting(2, submitted=-900, time_limit=200, needs=b_only), b_labels={"zone": "x"}
    )
    assert first == {1: ("a", 100), 2: ("b", 300)}
    assert starts == (Start(2, "b", (0,)),)
    assert second == {1: ("a", 100)}


def test_a_job_held_by_its_users_cap_keeps_its_reservation_from_when_the_cap_frees():
    # Alice may run one job; hers (50) ends at +100, bob's (51) at +300. Bob's job 1 needs both GPUs:
    # +300. Alice's job 2 is held by her cap and reserved from when it frees, +100.
    limits = Policies(backfill=True, limits=Limits(user_max_concurrent=1))
    run = [running(50, ends=100, owner=7), running(51, ends=300, owner=8)]
    bobs = waiting(1, gpus=2, time_limit=100, owner=8)
    alices = waiting(2, submitted=-900, time_limit=200, owner=7)
    first = plan(two_gpus(bobs, alices, run=run, policies=limits), NOW)
    assert reserved(first) == {1: 300, 2: 100}
    assert first.waits[1] == (
        2,
        Reason.USER_LIMIT,
        f"its owner runs 1 of 1; reserved on n from {at(100).isoformat()}",
    )
    # Bob's running job ends early: afresh, his job 1 would take +100 and push alice's to +200.
    later = two_gpus(bobs, alices, run=run[:1], free=(1,), policies=limits)
    assert reserved(plan(later, at(50))) == {1: 100, 2: 200}
    kept = plan(replace(later, previous_reservations=first.reservations), at(50))
    assert reserved(kept) == {1: 300, 2: 100}
    # At +100 the cap frees and alice's job starts as promised.
    done = two_gpus(bobs, alices, free=(0, 1), policies=limits, previous=kept.reservations)
    assert plan(done, at(100)).starts == (Start(2, "n", (0,)),)


def test_a_users_cap_is_a_resource_a_start_cannot_take_from_their_reserved_job():
    # Alice may run two jobs; she runs one until +1000. Her job 1 needs both GPUs of node n, busy until
    # +100: it is reserved there, and for one of her two slots, over [+100, +200). Her job 2 (1000 s)
    # fits on m now and she runs only one job, but it would still run at +100, when job 1 needs the slot:
    # it is held by her cap and reserved from +200. Her job 3 (50 s) ends before +100: it starts.
    nodes = (NodeFree("n", ()), NodeFree("m", (0,)))
    run = (running(50, ends=100, gpus=2, owner=8), running(51, ends=1000, node="m", owner=7))
    jobs = (
        waiting(1, gpus=2, time_limit=100, owner=7),
        waiting(2, submitted=-900, time_limit=1000, owner=7),
        waiting(3, submitted=-800, time_limit=50, owner=7),
    )
    policies = Policies(backfill=True, limits=Limits(user_max_concurrent=2))
    result = plan(Snapshot(jobs, nodes, run, policies), NOW)
    assert result.starts == (Start(3, "m", (0,)),)
    assert reserved(result) == {1: 100, 2: 200}
    assert result.waits[1].reason == Reason.USER_LIMIT
    assert result.waits[1].detail.startswith("its owner runs 1 of 2; the rest is reserved for their jobs")
    # Two of her jobs held by a cap of one are reserved one after the other, not both for when it frees.
    one = Policies(backfill=True, limits=Limits(user_max_concurrent=1))
    both = plan(Snapshot(jobs[1:], nodes, run[1:], one), NOW)
    assert reserved(both) == {2: 1000, 3: 2000}


def test_jobs_held_by_the_global_cap_are_reserved_for_when_it_frees_one_after_the_other():
    # At most two jobs run: job 50 holds both GPUs of n until +100, job 51 the GPU of k until +1000. Job 1
    # (two GPUs: only n has them) is reserved at +100, with the slot job 50 gives back. Job 2 (1000 s)
    # fits on m now but the cap is full, and from +100 to +200 job 1 has the free slot: reserved from
    # +200. Job 3 then has no slot until job 51 ends: +1000 (not all three "when the cap frees").
    def nodes(k):
        return (NodeFree("n", ()), NodeFree("m", (0,)), NodeFree("k", k))

    run = (running(50, ends=100, gpus=2), running(51, ends=1000, node="k"))
    jobs = (
        waiting(1, gpus=2, time_limit=100),
        waiting(2, submitted=-900, time_limit=1000),
        waiting(3, submitted=-800, time_limit=50),
    )
    policies = Policies(backfill=True, limits=Limits(max_concurrent=2))
    result = plan(Snapshot(jobs, nodes(()), run, policies), NOW)
    assert result.starts == ()
    assert reserved(result) == {1: 100, 2: 200, 3: 1000}
    assert result.waits[1] == (
        2,
        Reason.GLOBAL_LIMIT,
        f"2 of 2 jobs running; reserved on m from {at(200).isoformat()}",
    )
    # Job 51 ends early (+50): a slot is free until job 1 needs one at +100 and both free after, so job 2
    # starts; job 1 keeps +100 and job 3 moves earlier, never later.
    later = Snapshot(jobs, nodes((0,)), run[:1], policies, previous_reservations=result.reservations)
    second = plan(later, at(50))
    assert second.starts == (Start(2, "m", (0,)),)
    assert reserved(second) == {1: 100, 3: 200}
    assert second.waits[1] == (
        3,
        Reason.GLOBAL_LIMIT,
        f"2 of 2 jobs running; reserved on k from {at(200).isoformat()}",
    )


def test_a_reservation_behind_a_job_without_a_time_limit_is_kept_for_once_it_ends():
    # Job 50 has no time limit: job 1 (2 GPUs) is reserved for once it ends (an unknown time). On the next
    # plan a job without a time limit submitted later still may not take the free GPU (it would hold it
    # through then); one with a time limit may.
    endless = running(50, ends=None)
    big = waiting(1, gpus=2, time_limit=3600)
    first = plan(two_gpus(big, run=[endless], free=(1,)), NOW)
    assert reserved(first) == {1: None}
    newcomers = (waiting(2, submitted=10), waiting(3, submitted=11, time_limit=60))
    second = plan(two_gpus(big, *newcomers, run=[endless], free=(1,), previous=first.reservations), at(20))
    assert reserved(second) == {1: None}
    assert second.starts == (Start(3, "n", (1,)),)
    assert {w.job_id: w.reason for w in second.waits} == {1: Reason.RESOURCES, 2: Reason.RESOURCES}


def test_only_a_job_of_higher_priority_arriving_moves_a_reservation_later():
    # One GPU, busy until +100: job 1 (priority 10) is reserved at +100.
    run = [running(50, ends=100)]
    first = plan(two_gpus(waiting(1, time_limit=100), run=run), NOW)
    assert reserved(first) == {1: 100}
    # Arrivals of equal and lower priority go behind it; an urgent one goes ahead and takes +100.
    equal, low = waiting(2, submitted=5, time_limit=50), waiting(3, priority=0, submitted=6, time_limit=50)
    same = plan(
        two_gpus(waiting(1, time_limit=100), equal, low, run=run, previous=first.reservations), at(10)
    )
    assert reserved(same)[1] == 100
    urgent = waiting(4, priority=30, submitted=7, time_limit=100)
    moved = plan(two_gpus(waiting(1, time_limit=100), urgent, run=run, previous=first.reservations), at(10))
    assert reserved(moved) == {4: 100, 1: 200}


def test_a_job_arriving_ahead_displaces_the_kept_slot_of_the_job_lowest_in_the_queue():
    # Both GPUs are busy until +100; jobs 1 and 2 (1 GPU each, job 1 first) are both reserved at +100.
    run = [running(50, ends=100, gpus=2)]
    first_two = (waiting(1, time_limit=100), waiting(2, submitted=-900, time_limit=100))
    first = plan(two_gpus(*first_two, run=run), NOW)
    assert reserved(first) == {1: 100, 2: 100}
    # An urgent job arrives and takes one of the two GPUs at +100: job 2, the lower, gives way.
    urgent = waiting(3, priority=20, submitted=5, time_limit=100)
    second = plan(two_gpus(*first_two, urgent, run=run, previous=first.reservations), at(10))
    assert reserved(second) == {3: 100, 1: 100, 2: 200}


def test_a_starving_job_goes_ahead_of_kept_reservations_of_lower_jobs():
    # Job 2 (priority 20) holds a reservation at +100. Job 1 (priority 0) has now waited longer than the
    # threshold: it starves, and is reserved at +100 ahead of job 2, as a plan without kept reservations
    # would have it.
    policies = Policies(backfill=True, ageing=Ageing(threshold_seconds=3600))
    run = [running(50, ends=100)]
    high = waiting(2, priority=20, time_limit=100, submitted=-60)
    old = waiting(1, priority=0, time_limit=100, submitted=-3590)
    first = plan(two_gpus(high, old, run=run, policies=policies), NOW)
    assert reserved(first) == {2: 100, 1: 200}
    second = plan(two_gpus(high, old, run=run, policies=policies, previous=first.reservations), at(20))
    assert second.order == (1, 2) and reserved(second) == {1: 100, 2: 200}


def test_a_kept_reservation_that_no_longer_fits_is_made_afresh():
    # The node lost a GPU (or a job overran its limit): the kept slot is gone, the job reserves again.
    first = plan(two_gpus(waiting(1, gpus=2, time_limit=60), run=[running(50, ends=100)], free=(1,)), NOW)
    assert reserved(first) == {1: 100}
    overran = [running(50, ends=100), running(51, ends=400)]
    second = plan(two_gpus(waiting(1, gpus=2, time_limit=60), run=overran, previous=first.reservations), NOW)
    assert reserved(second) == {1: 400}


# --- the guarantees over random traces ----------------------------------------------------------------------

NODES = ("a", "b", "c")  # three nodes of 4 GPUs
THRESHOLD = 900.0  # starvation threshold when ageing is on


@st.composite
def traces(draw):
    """Jobs arriving over time (some submitted earlier and released at their arrival, like a scheduled
    job), each with a time limit and an actual run time at most that, often much shorter; some are gang
    jobs (a part on each of two nodes)."""
    jobs = []
    for i in range(draw(st.integers(4, 18))):
        arrives = draw(st.integers(0, 1200))
        limit = draw(st.sampled_from([60, 120, 300, 600, 900]))
        released = draw(st.sampled_from([False, False, True]))
        gang = draw(st.sampled_from([1, 1, 1, 2]))
        jobs.append(
            (
                PendingJob(
                    id=i + 1,
                    gpu_count=gang * draw(st.integers(1, 4)),
                    nodes=gang,
                    priority=draw(st.sampled_from([0, 10, 10, 20])),
                    submitted_at=at(arrives - (5000 if released else 0)),
                    waiting_since=at(arrives) if released else None,
                    time_limit=float(limit),
                    owner=draw(st.integers(1, 3)),
                    team=draw(st.sampled_from([None, 1, 2])),
                ),
                arrives,
                draw(st.sampled_from([0.1, 0.5, 1.0])) * limit,  # run time
            )
        )
    return jobs


def replay(jobs, policies):
    """Tick at every arrival and every end; each plan gets the previous plan's reservations. Yields
    (time, snapshot, result, jobs arrived since the previous tick) and returns the starts."""
    arrivals = sorted(jobs, key=lambda j: (j[1], j[0].id))
    length = {job.id: runtime for job, _, runtime in jobs}
    free = {name: list(range(4)) for name in NODES}
    pending, run, ends, starts, previous, held = [], [], {}, {}, (), {}
    t = 0.0
    while arrivals or pending or run:
        for r in [r for r in run if ends[r.id] <= t]:
            run.remove(r)
            for node, gpus in held.pop(r.id):
                free[node] += gpus
        new = []
        while arrivals and arrivals[0][1] <= t:
            new.append(arrivals.pop(0)[0])
        pending += new
        nodes = tuple(NodeFree(name, tuple(sorted(g))) for name, g in free.items())
        snap = Snapshot(tuple(pending), nodes, tuple(run), policies, previous_reservations=previous)
        result = plan(snap, at(t))
        yield t, snap, result, new
        for s in result.starts:
            job = next(j for j in pending if j.id == s.job_id)
            pending.remove(job)
            parts = s.parts or ((s.node, s.gpus),)
            for node, gpus in parts:
                free[node] = [g for g in free[node] if g not in gpus]
            held[s.job_id] = parts
            run.append(
                RunningJob(
                    s.job_id,
                    s.node,
                    job.gpu_count,
                    at(t),
                    owner=job.owner,
                    team=job.team,
                    time_limit=job.time_limit,
                    gpus=s.gpus,
                    parts=tuple((node, len(gpus)) for node, gpus in s.parts),
                )
            )
            ends[s.job_id] = t + length[s.job_id]
            starts[s.job_id] = t
        previous = result.reservations
        upcoming = [ends[r.id] for r in run] + [a[1] for a in arrivals[:1]]
        assert upcoming or not pending, ("stuck", pending, result)
        if not upcoming:
            break
        t = min(upcoming)


def waited(job: PendingJob, t: float) -> float:
    """How long the job has been able to wait at `t` (from its release when it was scheduled)."""
    return NOW.timestamp() + t - job.since_ts


def assert_never_overbooked(snap: Snapshot, result, t: float) -> None:
    """Kept or new, the reservations, the starts and the running jobs (each run to its time limit) fit
    every node at every moment."""
    by_id = {job.id: job for job in snap.pending}
    for node in snap.nodes:
        changes = [
            (r.started_at.timestamp() - NOW.timestamp() + r.time_limit, count)
            for r in snap.running
            for name, count in r.parts or ((r.node, r.gpu_count),)
            if name == node.name
        ]
        for s in result.starts:
            for name, gpus in s.parts or ((s.node, s.gpus),):
                if name == node.name:
                    changes += [(t, -len(gpus)), (t + by_id[s.job_id].time_limit, len(gpus))]
        for r in result.reservations:
            places = r.nodes or (r.node,)
            if node.name in places:
                begin, count = seconds(r), r.gpu_count // len(places)
                changes += [(begin, -count), (begin + by_id[r.job_id].time_limit, count)]
        level = len(node.free)
        for _, change in sorted(changes, key=lambda c: (c[0], -c[1])):  # GPUs come back, then are taken
            level += change
            assert level >= 0, (node, changes, result)


def seconds(reservation) -> float:
    return INF if reservation.start is None else (reservation.start - NOW).total_seconds()


@settings(max_examples=60, deadline=None)
@given(
    traces(),
    st.booleans(),
    st.sampled_from([None, 1, 2]),
    st.sampled_from([None, 2]),
    st.sampled_from([None, None, 3]),
)
def test_a_reservation_never_moves_later_unless_a_job_that_takes_precedence_arrived(
    jobs, ageing, user_cap, team_cap, global_cap
):
    """The README's guarantee, plan after plan: a reserved job starts, or is reserved again, no later
    than its reservation, unless a job now ahead of it arrived since (so of higher priority: equal ones
    queue behind) or is starving (waited past the threshold, counted from its release). Every job starts
    no later than its first reservation unless such a job came ahead of it meanwhile. Early finishes
    never push anyone later, and neither do the global, user and team caps: a job held by one is
    reserved from when its cap will let it start."""
    policies = Policies(
        backfill=True,
        ageing=Ageing(threshold_seconds=THRESHOLD) if ageing else None,
        limits=Limits(max_concurrent=global_cap, user_max_concurrent=user_cap, team_max_concurrent=team_cap),
    )
    by_id = {job.id: job for job, _, _ in jobs}
    first_reservation: dict[int, float] = {}
    passed: set[int] = set()  # jobs that someone taking precedence went ahead of while they waited
    last: dict[int, float] = {}
    for t, snap, result, new in replay(jobs, policies):
        rank = {job_id: i for i, job_id in enumerate(result.order)}
        new_ids = {job.id for job in new}
        takes_precedence = [
            job_id
            for job_id in result.order
            if job_id in new_ids or (ageing and waited(by_id[job_id], t) > THRESHOLD)
        ]
        now = {s.job_id: t for s in result.starts} | {r.job_id: seconds(r) for r in result.reservations}
        for job_id, promised in last.items():
            if job_id not in rank:
                continue
            if any(rank[x] < rank[job_id] for x in takes_precedence if x != job_id):
                passed.add(job_id)
                continue
            assert now.get(job_id, INF) <= promised, (job_id, promised, now.get(job_id), t, result)
        for job_id, when in now.items():
            first_reservation.setdefault(job_id, when)
            if job_id not in passed and job_id in {s.job_id for s in result.starts}:
                assert t <= first_reservation[job_id], (job_id, first_reservation[job_id], t)
        last = {r.job_id: seconds(r) for r in result.reservations}
        assert_never_overbooked(snap, result, t)
        # Kept reservations never hold back a starving job: its start or reservation is what a plan with
        # no reservations kept would give it (starving jobs go first, longest-waiting first).
        if ageing:
            fresh = plan(replace(snap, previous_reservations=()), at(t))
            starving = {j for j in result.order if waited(by_id[j], t) > THRESHOLD}
            assert {s for s in result.starts if s.job_id in starving} == {
                s for s in fresh.starts if s.job_id in starving
            }
            assert {r for r in result.reservations if r.job_id in starving} == {
                r for r in fresh.reservations if r.job_id in starving
            }
