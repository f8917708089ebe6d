"""The ticker: a change asks for a tick and returns (it never plans itself); asks coalesce into fewer
ticks, with one after the last ask; one ticker at a time per database; no write transaction held while
planning."""

import threading

import pytest
from django.db import connection, transaction

from scheduling import planner, ticker
from scheduling.models import Job, TickState
from scheduling.states import Status
from scheduling.transitions import transition
from tests.conftest import api_for, wait_for
from tests.factories import make_job

pytestmark = pytest.mark.django_db(transaction=True)


class Planner:
    """Wraps planner.plan: records who planned, what had been asked by then, and how many planned at
    once; `hold` keeps each plan waiting until released (a deliberate gate, not a sleep)."""

    def __init__(self, monkeypatch, *, hold: bool = False):
        self.real = planner.plan
        self.threads: list[str] = []
        self.asked: list[int] = []
        self.open_transaction: list[bool] = []
        self.at_once = self.most_at_once = 0
        self.entered = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.lock = threading.Lock()
        monkeypatch.setattr(planner, "plan", self)

    def __call__(self, snap, now):
        with self.lock:
            self.at_once += 1
            self.most_at_once = max(self.most_at_once, self.at_once)
            self.threads.append(threading.current_thread().name)
            self.asked.append(TickState.objects.get(pk=1).asked if TickState.objects.exists() else 0)
            self.open_transaction.append(_in_transaction())
        try:
            self.entered.set()
            assert self.release.wait(60), "the test never released the planner"
            return self.real(snap, now)
        finally:
            with self.lock:
                self.at_once -= 1


def _in_transaction() -> bool:
    """Whether this thread's connection has a transaction open (SQLite: a write lock under IMMEDIATE)."""
    if connection.in_atomic_block:
        return True
    raw = connection.connection
    if connection.vendor == "sqlite":
        return bool(raw is not None and raw.in_transaction)
    from psycopg.pq import TransactionStatus

    return raw is not None and raw.info.transaction_status != TransactionStatus.IDLE


@pytest.fixture
def raw(alice):
    from django.contrib.auth.models import Permission

    alice.user_permissions.add(Permission.objects.get(codename="submit_raw_command"))
    return alice


def test_a_submit_asks_for_a_tick_and_the_ticker_thread_plans_and_starts_the_job(
    alice, node, raw, monkeypatch
):
    plans = Planner(monkeypatch)
    response = api_for(alice).post("/api/v1/jobs", {"argv": ["true"], "gpu_count": 1}, format="json")
    assert response.status_code == 201, response.content
    job_id = response.json()["id"]
    wait_for(lambda: Job.objects.get(pk=job_id).status == Status.DISPATCHED, message="the ticker to start it")
    assert plans.threads and set(plans.threads) == {"gpuq-ticker"}  # never the request's thread
    assert not any(plans.open_transaction)


def test_a_finish_frees_gpus_for_the_next_job_through_the_ticker_not_the_caller(alice, node, monkeypatch):
    holder = make_job(alice, gpu_count=2, status=Status.RUNNING, node=node, gpu_indices=[0, 1])
    waiting = make_job(alice, gpu_count=2)
    plans = Planner(monkeypatch)
    transition(holder, Status.COMPLETED, reason="done")  # as the executor records an outcome
    wait_for(lambda: Job.objects.get(pk=waiting.pk).status == Status.DISPATCHED, message="the next job")
    assert "MainThread" not in plans.threads


def test_many_asks_while_a_tick_runs_coalesce_and_the_last_ask_gets_a_tick(alice, node, monkeypatch):
    plans = Planner(monkeypatch, hold=True)
    ticker.wake()  # a first tick, held in the planner
    with transaction.atomic():
        ticker.request_tick()
    assert plans.entered.wait(60)

    def ask(times):
        for _ in range(times):
            with transaction.atomic():
                ticker.request_tick()
        connection.close()

    askers = [threading.Thread(target=ask, args=(10,)) for _ in range(8)]
    for thread in askers:
        thread.start()
    for thread in askers:
        thread.join(60)
    asked = TickState.objects.get(pk=1).asked
    assert asked == 81
    plans.release.set()
    wait_for(lambda: TickState.objects.get(pk=1).done == asked, message="a tick after the last ask")
    assert ticker.settle(60)
    assert 2 <= len(plans.asked) < 10  # coalesced: far fewer ticks than the 81 asks …
    assert plans.asked[-1] == asked  # … and the last one planned with every ask already made
    assert plans.most_at_once == 1


def test_two_tickers_never_run_at_once(alice, node, monkeypatch):
    plans = Planner(monkeypatch, hold=True)
    first_result: list = []

    def first_ticker():
        try:
            first_result.append(ticker.run(force=True))
        finally:
            connection.close()

    first = threading.Thread(target=first_ticker, name="first")
    first.start()
    assert plans.entered.wait(60)
    # The second finds the lock taken and leaves the work to the first (no waiting, no planning).
    assert ticker.run(force=True) is None
    if connection.vendor == "postgresql":  # another session, as another machine's ticker would be
        import psycopg

        settings = connection.settings_dict
        with psycopg.connect(
            dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"], port=settings["PORT"]
        ) as other:
            locked = other.execute("SELECT pg_try_advisory_lock(%s)", [ticker._ADVISORY_LOCK_KEY]).fetchone()
            assert locked == (False,)
    plans.release.set()
    first.join(60)
    assert first_result and first_result[0] is not None
    assert plans.most_at_once == 1 and len(plans.threads) == 1


def test_a_writer_is_not_blocked_while_the_ticker_plans(alice, node, monkeypatch):
    job = make_job(alice, gpu_count=1, name="before")
    plans = Planner(monkeypatch, hold=True)

    def tick_in_thread():
        try:
            ticker.run(force=True)
        finally:
            connection.close()

    thread = threading.Thread(target=tick_in_thread)
    thread.start()
    assert plans.entered.wait(60)
    with transaction.atomic():  # SQLite: BEGIN IMMEDIATE, which would wait while a tick held the lock
        Job.objects.filter(pk=job.pk).update(name="during")
    plans.release.set()
    thread.join(60)
    assert plans.open_transaction and not any(plans.open_transaction)
    assert Job.objects.get(pk=job.pk).name == "during"


def test_a_tick_that_covered_every_ask_is_not_run_again(alice, node, monkeypatch):
    plans = Planner(monkeypatch)
    with transaction.atomic():
        ticker.request_tick()
    wait_for(lambda: TickState.objects.get(pk=1).done == 1, message="the tick")
    assert ticker.settle(60)
    assert ticker.run() is None  # nothing asked since
    assert len(plans.threads) == 1


def test_a_tick_asked_for_during_a_tick_waits_as_long_as_that_tick_took(alice, node, monkeypatch, settings):
    """A flood of asks at a long queue: the ticks would follow each other at once and take all of their
    process's time. The tick after a tick waits as long as the first took (GPUQ_TICK_SPACING); a lone
    ask waits for nothing."""
    settings.GPUQ_TICK_SPACING = 1.0
    settings.GPUQ_TICK_SPACING_ABOVE_SECONDS = 0.0  # this test's first tick is as long as it holds it
    pauses: list[float] = []
    monkeypatch.setattr(ticker, "_pause", pauses.append)
    plans = Planner(monkeypatch, hold=True)
    with transaction.atomic():
        ticker.request_tick()
    assert plans.entered.wait(60)
    with transaction.atomic():
        ticker.request_tick()  # while the first tick plans
    plans.release.set()
    wait_for(lambda: TickState.objects.get(pk=1).done == 2, message="the second tick")
    assert ticker.settle(60)
    assert len(plans.asked) == 2
    spent = TickState.objects.get(pk=1).durations["tick"]
    first = spent["sum"] - spent["last"]
    assert pauses == [pytest.approx(min(first, settings.GPUQ_TICK_SECONDS))]
    assert pauses[0] > 0

    pauses.clear()
    with transaction.atomic():
        ticker.request_tick()  # alone
    wait_for(lambda: TickState.objects.get(pk=1).done == 3, message="the lone tick")
    assert ticker.settle(60)
    assert pauses == []

    # A tick shorter than GPUQ_TICK_SPACING_ABOVE_SECONDS (a small queue's) is followed at once.
    settings.GPUQ_TICK_SPACING_ABOVE_SECONDS = 3600.0
    plans.release.clear()
    plans.entered.clear()
    with transaction.atomic():
        ticker.request_tick()
    assert plans.entered.wait(60)
    with transaction.atomic():
        ticker.request_tick()
    plans.release.set()
    wait_for(lambda: TickState.objects.get(pk=1).done == 5, message="the tick after the short one")
    assert ticker.settle(60)
    assert pauses == []


def _asked() -> int:
    return TickState.objects.filter(pk=1).values_list("asked", flat=True).first() or 0


def test_a_finish_asks_in_its_own_transaction_on_sqlite_and_just_after_its_commit_on_postgresql(alice, node):
    # SQLite: the finish holds the write lock already, so its ask commits with it (no second write
    # transaction queued for the lock); PostgreSQL: after the commit, holding no row lock meanwhile.
    job = make_job(alice, status=Status.RUNNING, node=node, gpu_indices=[0])
    before = _asked()
    with transaction.atomic():
        transition(job, Status.COMPLETED, reason="done")
        inside = _asked()
    assert inside == (before + 1 if connection.vendor == "sqlite" else before)
    assert _asked() == before + 1


def test_a_change_rolled_back_asks_for_no_tick(alice, node):
    job = make_job(alice, status=Status.RUNNING, node=node, gpu_indices=[0])
    before = _asked()
    with pytest.raises(RuntimeError), transaction.atomic():
        transition(job, Status.COMPLETED, reason="done")
        raise RuntimeError("rolled back")
    assert _asked() == before
    job.refresh_from_db()
    assert job.status == Status.RUNNING
    with transaction.atomic():  # an ask rolled back with a savepoint is made again by a later change
        with pytest.raises(RuntimeError), transaction.atomic():
            ticker.request_tick()
            raise RuntimeError("savepoint rolled back")
        transition(job, Status.COMPLETED, reason="done")
    assert _asked() == before + 1


def test_a_tick_writes_nothing_before_it_plans_and_starts_a_job_in_a_bounded_number_of_queries(
    alice, node, monkeypatch
):
    # Submit-to-running waits for everything a tick does before its dispatch commits; on SQLite any
    # write there (even an UPDATE that changes no row) queues for the write lock first.
    from django.test.utils import CaptureQueriesContext

    ticker.run(force=True, wait=True)  # the first tick makes the rows every later one updates
    job = make_job(alice, gpu_count=1)
    assert ticker.settle(60)
    planned_after: list[int] = []
    real_plan = planner.plan

    def plan(snap, now):
        planned_after.append(len(queries.captured_queries))
        return real_plan(snap, now)

    monkeypatch.setattr(planner, "plan", plan)
    monkeypatch.setattr("scheduling.tick.async_task", lambda *args, **kwargs: None)
    with CaptureQueriesContext(connection) as queries:
        ticker.run(force=True, wait=True)
    assert Job.objects.get(pk=job.pk).status == Status.DISPATCHED
    before_plan = [q["sql"].split()[0].upper() for q in queries.captured_queries[: planned_after[0]]]
    assert before_plan and set(before_plan) <= {"SELECT"}, before_plan
    sql = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("BEGIN", "SELECT pg_"))]
    # The dispatch's transaction ends with its event; its task is enqueued as it commits.
    event = next(i for i, q in enumerate(sql) if q.startswith('INSERT INTO "scheduling_event"'))
    assert event + 1 <= 22, "\n".join(q[:120] for q in sql[: event + 1])


def test_the_periodic_tick_plans_only_while_some_job_waits_or_a_tick_was_asked_for(
    alice, node, monkeypatch, settings
):
    from datetime import timedelta

    from django.utils import timezone

    make_job(alice, status=Status.COMPLETED)
    ticker.run(force=True, wait=True)
    assert ticker.settle(60)
    plans = Planner(monkeypatch)
    ticker.run_periodic()  # nothing waits, nothing asked: an idle node's period costs no tick
    assert plans.threads == []
    with transaction.atomic():
        ticker.request_tick()
    assert ticker.settle(60)
    ticker.run_periodic()
    assert len(plans.threads) == 1  # the ask got its tick (the ticker thread's or this one's)
    settings.GPUQ_PLAN_SECONDS = 3600
    make_job(alice, status=Status.SCHEDULED, start_after=timezone.now() + timedelta(hours=1))
    ticker.run_periodic()  # a job waits for its start time: time passing matters, so it ticks
    assert plans.threads[1:] == ["MainThread"]
    ticker.run_periodic()  # … but a whole plan at most every GPUQ_PLAN_SECONDS while nothing asks
    assert plans.threads[1:] == ["MainThread"]
    settings.GPUQ_PLAN_SECONDS = 0  # every period
    ticker.run_periodic()
    ticker.run_periodic()
    assert plans.threads[1:] == ["MainThread"] * 3
    settings.GPUQ_PLAN_SECONDS = 3600
    ticker.run_periodic()
    assert len(plans.threads) == 4
    make_job(alice, status=Status.SCHEDULED, start_after=timezone.now() - timedelta(seconds=1))
    ticker.run_periodic()  # a start time has come: at once
    assert len(plans.threads) > 4
    assert Job.objects.filter(status=Status.SCHEDULED, start_after__lte=timezone.now()).count() == 0


def test_a_dispatch_that_never_ran_is_ticked_every_period(alice, node, monkeypatch, settings):
    settings.GPUQ_PLAN_SECONDS = 3600
    make_job(alice, status=Status.DISPATCHED, node=node, gpu_indices=[0])
    plans = Planner(monkeypatch)
    ticker.run_periodic()
    ticker.run_periodic()
    assert plans.threads == ["MainThread"] * 2


def _lock_free_elsewhere() -> bool:
    """Whether another session (as another machine's ticker) can take the ticker lock now; let go at once."""
    import psycopg

    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        took = other.execute("SELECT pg_try_advisory_lock(%s)", [ticker._ADVISORY_LOCK_KEY]).fetchone()[0]
        if took:
            other.execute("SELECT pg_advisory_unlock(%s)", [ticker._ADVISORY_LOCK_KEY])
        return took


@pytest.mark.skipif(
    not connection.settings_dict["ENGINE"].endswith("postgresql"), reason="the advisory lock: PostgreSQL"
)
def test_a_tick_that_dispatches_holds_the_lock_to_its_end(alice, node, monkeypatch):
    """A dispatch enqueues its task through django-q2's ORM broker, which closes this thread's connection
    when it is obsolete (CONN_MAX_AGE: at once in the tests, after 5 minutes in production). A lock held by
    that session went with it mid-tick, so another ticker could tick at once, and the unlock at the end ran
    on a new session (PostgreSQL: "you don't own a lock")."""
    from scheduling import tick as tick_module

    real_async_task = tick_module.async_task
    free_after_enqueue: list[bool] = []

    def async_task(*args, **kwargs):
        result = real_async_task(*args, **kwargs)
        if threading.current_thread() is threading.main_thread():
            free_after_enqueue.append(_lock_free_elsewhere())
        return result

    monkeypatch.setattr(tick_module, "async_task", async_task)
    job = make_job(alice)
    ticker.run(force=True, wait=True)
    assert Job.objects.get(pk=job.pk).status == Status.DISPATCHED
    assert free_after_enqueue == [False]  # still this tick's lock after its dispatch's enqueue
    assert _lock_free_elsewhere()  # and let go at the end
