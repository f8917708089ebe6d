"""Machines whose wall clocks disagree (a real gpuq process with GPUQ_CLOCK_OFFSET_SECONDS): every time
that decides anything comes from the database's clock, so a machine an hour off neither hides the tasks it
enqueues from the others nor looks dead when it registers. tests/e2e/test_faults.py runs whole skewed
nodes."""

import subprocess
import sys

import pytest
from django.conf import settings
from django_q.brokers import get_broker

from gpus.models import Node, NodeStatus
from gpus.services import nodes_mark_offline
from tests.conftest import child_env
from tests.e2e.faults import skewed

pytestmark = [
    pytest.mark.processes,
    pytest.mark.django_db(transaction=True),
]


def run_skewed(seconds: float, code: str) -> None:
    """Run `code` in a gpuq process (Django set up on the test database) whose clock is `seconds` off."""
    manage = str(settings.BASE_DIR / "manage.py")
    done = subprocess.run(
        [sys.executable, manage, "shell", "-c", code],
        env=child_env(**skewed(seconds)),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr


def test_a_task_enqueued_by_a_machine_whose_clock_is_ahead_is_taken_at_once():
    # The tick that dispatches a job may run on any machine; the job's node takes the task from its queue.
    run_skewed(3600, "from django_q.tasks import async_task; async_task('math.floor', 1.5, cluster='skewed')")
    taken = get_broker("skewed").dequeue()  # the broker gpuq's nodes use
    assert taken and taken[0][1]  # django-q2's own ORM broker saw the row as locked for the next hour


def test_a_machine_whose_clock_is_behind_does_not_look_dead_when_it_registers():
    run_skewed(
        -3600,
        "from gpus.services import node_register; "
        "node_register(name='behind', backend='declared', gpus=[], labels={}, boot_id='boot-behind')",
    )
    nodes_mark_offline()  # what every other node's loop does each period
    assert Node.objects.get(name="behind").status == NodeStatus.ONLINE
