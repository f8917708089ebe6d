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


def test_the_queue_page_shows_counts_estimates_and_held_jobs(alice, node):
    from scheduling.states import Status

    busy = make_job(alice, gpu_count=2, time_limit_seconds=600, name="busy")
    tick()
    make_job(alice, name="next", time_limit_seconds=60)
    make_job(
        alice,
        name="approval",
        status=Status.BLOCKED,
        wait_reason="approval",
        wait_detail="3 GPUs is more than 2",
    )
    tick()  # stores the plan and estimates the page shows
    client = Client()
    client.force_login(alice)
    page = client.get("/").content.decode()
    assert "<strong>1</strong> queued" in page and "<strong>1</strong> running" in page
    waiting, held = page.split('id="pending"')[1].split('id="held"')
    assert " UTC</time>" in waiting  # an estimated start, from the simulation
    assert "Awaiting approval" in held and "3 GPUs is more than 2" in held
    assert busy.pk


def test_the_queue_page_shows_a_jobs_progress_only_to_those_who_may_read_it(alice, bob, node):
    from scheduling.models import Job

    job = make_job(alice, argv=["sleep", "30"], name="train")
    tick()
    Job.objects.filter(pk=job.pk).update(progress={"fraction": 0.42, "message": "secret-step-name"})
    pages = {}
    for user in (alice, bob):
        client = Client()
        client.force_login(user)
        pages[user.username] = client.get("/").content.decode()
    assert f"#{job.pk} train" in pages["bob"]  # bob sees the job as the queue shows it …
    assert "secret-step-name" not in pages["bob"] and f'data-progress="{job.pk}"' not in pages["bob"]
    assert "secret-step-name" in pages["alice"] and f'data-progress="{job.pk}"' in pages["alice"]
