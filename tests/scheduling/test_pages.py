"""The queue page: behind login, shows running and waiting jobs with position and reason."""

from django.test import Client

from scheduling.tick import tick
from tests.factories import make_job


def test_the_queue_page_needs_a_login(db):
    response = Client().get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_the_queue_page_shows_running_and_waiting_jobs(alice, bob, node):
    jobs = [
        make_job(owner, argv=["sleep", "30"], name=f"run-{i}") for i, owner in enumerate((alice, bob, bob))
    ]
    tick()
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    running, waiting = page.split('id="pending"')
    assert f"#{jobs[0].pk} run-0" in running and f"#{jobs[1].pk} run-1" in running
    assert "testnode:0" in running
    assert f"#{jobs[2].pk} run-2" in waiting and "resources" in waiting


def test_the_login_page_logs_in(alice):
    client = Client()
    response = client.post("/accounts/login/", {"username": "alice", "password": "pw-alice"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
