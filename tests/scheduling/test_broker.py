"""The task queue's pusher waits for work instead of polling (scheduling/broker.py): on SQLite an enqueue
rings the queue's doorbell (scheduling/doorbell.py), which only this Unix user's processes may ring."""

import os
import pwd
import threading

import pytest
from django.db import connection, connections
from django_q.conf import Conf
from django_q.models import OrmQ

from scheduling import doorbell
from scheduling.broker import WakingORM
from tests.conftest import wait_for

SQLITE = connection.settings_dict["ENGINE"].endswith("sqlite3")


def test_a_ring_wakes_the_bell_of_its_queue_and_database_only(tmp_path):
    database = str(tmp_path / "db.sqlite3")
    bell = doorbell.Bell(database, "node-a")
    other_queue = doorbell.Bell(database, "node-b")
    other_database = doorbell.Bell(str(tmp_path / "other.sqlite3"), "node-a")
    try:
        assert bell.bound and other_queue.bound and other_database.bound
        doorbell.ring(database, "node-a")
        doorbell.ring(database, "node-a")
        assert bell.wait(60) == 2  # both, drained at once
        assert other_queue.wait(0) == 0 and other_database.wait(0) == 0
        assert bell.wait(0) == 0  # nothing left
    finally:
        for b in (bell, other_queue, other_database):
            b.close()


def test_ringing_a_bell_nobody_listens_to_neither_blocks_nor_fails(tmp_path):
    doorbell.ring(str(tmp_path / "db.sqlite3"), "nobody-listens")


def test_a_second_listener_of_the_same_queue_is_refused_and_polls_instead(tmp_path):
    database = str(tmp_path / "db.sqlite3")
    first = doorbell.Bell(database, "node-a")
    second = doorbell.Bell(database, "node-a")
    try:
        assert first.bound and not second.bound
        assert second.wait(0) == 0
    finally:
        first.close()
        second.close()
    again = doorbell.Bell(database, "node-a")  # the name is free once its holder closed it
    assert again.bound
    again.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="changing to another Unix user needs root (CI runs as root)")
def test_rings_from_another_unix_user_are_ignored(tmp_path):
    """A job runs as another account (scheduling/runas.py) and can send to any abstract socket: its rings
    must not make a node's pusher look (and spin)."""
    database = str(tmp_path / "db.sqlite3")
    bell = doorbell.Bell(database, "node-a")
    try:
        child = os.fork()
        if child == 0:  # as a job would: another user, then ring
            try:
                os.setgid(pwd.getpwnam("nobody").pw_gid)
                os.setuid(pwd.getpwnam("nobody").pw_uid)
                doorbell.ring(database, "node-a")
            finally:
                os._exit(0)
        assert os.waitpid(child, 0)[1] == 0
        doorbell.ring(database, "node-a")  # and one of ours, after it
        assert bell.wait(60) == 1
        assert bell.ignored == 1
    finally:
        bell.close()


@pytest.mark.skipif(not SQLITE, reason="the doorbell is SQLite's; PostgreSQL's pusher LISTENs")
@pytest.mark.django_db(transaction=True)
def test_an_idle_pusher_takes_a_task_when_it_is_enqueued_not_at_its_next_poll(monkeypatch, settings):
    """With the poll and the idle look ten minutes apart, the pusher still takes a task as soon as another
    connection enqueues it: the enqueue rang (before the doorbell, it slept out its poll)."""
    monkeypatch.setattr(Conf, "POLL", 600.0)
    settings.GPUQ_Q_IDLE_POLL_SECONDS = 600.0
    queue = "bell-test"
    taken: list = []
    looks: list = []
    stop = threading.Event()
    pusher = WakingORM(list_key=queue)
    claim = pusher._claim

    def counted_claim():
        looks.append(1)
        return claim()

    pusher._claim = counted_claim

    def run():
        try:
            while not stop.is_set() and not taken:
                taken.extend(pusher.dequeue() or [])
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: looks, message="the pusher's first look at its empty queue")
        WakingORM(list_key=queue).enqueue("the payload")
        wait_for(lambda: taken, timeout=20, message="the pusher took the task")
        assert [payload for _, payload in taken] == ["the payload"]
        assert OrmQ.objects.filter(key=queue).count() == 1  # claimed (locked), not yet acknowledged
    finally:
        stop.set()
        doorbell.ring(connection.settings_dict["NAME"], queue)  # out of its wait, if it still waits
        thread.join(timeout=60)
        pusher._reset()


@pytest.mark.django_db
def test_a_task_is_due_the_instant_it_is_enqueued():
    """A pusher woken by a ring looks well within a millisecond of the enqueue: the task must be due then
    already. (On SQLite the claim compared '…:51.149000', the lock, with '…:51.149', `Now()`, as text:
    a task looked at within its own millisecond stayed until the next idle look, a second later.)"""
    broker = WakingORM(list_key="due-test")
    for i in range(20):  # most of them within the enqueue's own millisecond
        broker.enqueue(f"task {i}")
        assert [payload for _, payload in broker._claim()] == [f"task {i}"]


@pytest.mark.skipif(not SQLITE, reason="the doorbell is SQLite's; PostgreSQL's pusher LISTENs")
@pytest.mark.django_db(transaction=True)
def test_a_pusher_whose_doorbell_was_taken_polls_then_binds_it_once_it_is_free(monkeypatch, settings):
    """A node restarted while its old pusher was still stopping: the new one polls meanwhile, and takes
    the doorbell at its next idle look once the old one has gone."""
    monkeypatch.setattr(Conf, "POLL", 0.01)
    settings.GPUQ_Q_IDLE_POLL_SECONDS = 0.05
    queue = "taken-bell"
    old = doorbell.Bell(connection.settings_dict["NAME"], queue)  # the old pusher's
    pusher = WakingORM(list_key=queue)
    try:
        for _ in range(5):
            pusher.dequeue()
        assert pusher._bell is not None and not pusher._bell.bound  # polling meanwhile
        old.close()
        wait_for(lambda: pusher.dequeue() or pusher._bell.bound, message="the pusher's doorbell bound")
        pusher._bell.wait(0)  # (nothing rang yet; drained either way)
        WakingORM(list_key=queue).enqueue("after the restart")
        assert pusher._bell.wait(60) == 1  # the enqueue rang the new pusher's bell
        assert [payload for _, payload in pusher._claim()] == ["after the restart"]
    finally:
        old.close()
        pusher._reset()
