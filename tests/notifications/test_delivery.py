"""Delivering notifications for real: e-mail to an SMTP server and signed webhooks to an HTTP receiver, with
retries that make exactly one delivery, and a hanging receiver that delays no scheduling."""

import ipaddress
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from django_q.conf import Conf

from notifications import fanout, sending
from notifications.fanout import cursor, fan_out
from notifications.models import Channel, Delivery, DeliveryStatus, Format, Kind, Preference, Webhook
from scheduling import ticker
from scheduling.models import Job, LogChunk
from scheduling.states import Status
from scheduling.transitions import transition
from tests.conftest import wait_for
from tests.factories import make_job
from tests.notifications.receivers import SmtpReceiver, WebhookReceiver

# Events get their commit position (`seq`) when their transaction commits: these tests commit.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def smtp(settings):
    with SmtpReceiver() as receiver:
        settings.GPUQ_EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", receiver.port
        yield receiver


def later(seconds: float = 3600):
    """A `now` past every backoff: a retry is due without waiting for it."""
    return timezone.now() + timedelta(seconds=seconds)


def fail_with_log(job, lines: list[str]) -> None:
    data = "".join(f"{line}\n" for line in lines).encode()
    LogChunk.objects.create(job=job, attempt=job.attempt, offset=0, size=len(data), data=data)
    transition(job, Status.FAILED, reason="exit code 3")


def hook_for(user, url: str, form: str = Format.JSON) -> Webhook:
    return Webhook.objects.create(owner=user, url=url, format=form)


def test_it_mails_a_failed_job_with_the_logs_last_lines_to_a_real_smtp_server(smtp, alice):
    alice.email = "alice@example.org"
    alice.save()
    cursor()  # notifications start from here
    job = make_job(alice, status=Status.RUNNING, name="train-resnet")
    fail_with_log(job, [f"step {i}" for i in range(30)] + ["CUDA out of memory"])

    assert fan_out() == 1
    assert sending.send_due() == 1

    ((to, message),) = smtp.messages
    assert to == ["alice@example.org"]
    assert message["Subject"] == f"[gpuq] Job {job.pk} (train-resnet) failed"
    body = message.get_payload(decode=True).decode()
    assert "exit code 3" in body and "CUDA out of memory" in body and "step 29" in body
    assert "step 5\n" not in body  # only the last GPUQ_NOTIFY_LOG_LINES (20) lines
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.channel) == (DeliveryStatus.DELIVERED, 1, "email")
    assert message["X-Gpuq-Delivery"] == delivery.key


def test_an_smtp_server_that_says_try_later_gets_the_mail_on_the_retry(smtp, alice):
    alice.email = "alice@example.org"
    alice.save()
    smtp.fail = 1
    cursor()
    transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
    fan_out()
    sending.send_due()
    assert smtp.messages == [] and "451" in Delivery.objects.get().last_error
    sending.send_due(now=later())
    assert len(smtp.messages) == 1
    assert (Delivery.objects.get().status, Delivery.objects.get().attempts) == (DeliveryStatus.DELIVERED, 2)


def test_a_receiver_that_fails_twice_gets_one_delivery_recorded_as_delivered(alice):
    with WebhookReceiver(fail=2) as receiver:
        receiver.secret = hook_for(alice, receiver.url).secret
        cursor()
        job = make_job(alice, status=Status.RUNNING)
        transition(job, Status.FAILED, reason="exit code 1")
        fan_out()

        assert sending.send_due() == 1
        assert sending.send_due() == 0  # the retry waits for its backoff
        delivery = Delivery.objects.get()
        assert delivery.status == DeliveryStatus.PENDING and "HTTP 500" in delivery.last_error
        assert sending.send_due(now=later()) == 1
        assert sending.send_due(now=later()) == 1
        assert sending.send_due(now=later()) == 0
        fan_out()  # reading the stream again makes no second delivery

    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts, delivery.last_error) == (DeliveryStatus.DELIVERED, 3, "")
    assert len(receiver.requests) == 3
    assert all(signed for _, _, signed in receiver.requests)
    assert {headers["X-Gpuq-Delivery"] for headers, _, _ in receiver.requests} == {delivery.key}
    assert receiver.requests[0][1]["kind"] == "failed" and receiver.requests[0][1]["job"]["id"] == job.pk


def test_a_bad_signature_is_refused_by_the_receiver(alice):
    with WebhookReceiver() as receiver:
        hook_for(alice, receiver.url)
        receiver.secret = "not-the-secret"
        cursor()
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
        fan_out()
        sending.send_due()
    assert receiver.requests and not receiver.requests[0][2]
    assert Delivery.objects.get().status == DeliveryStatus.PENDING


def test_a_receiver_that_never_answers_times_out_and_is_retried(alice, settings):
    settings.GPUQ_NOTIFY_TIMEOUT_SECONDS = 0.5
    with WebhookReceiver() as receiver:
        receiver.hang = True
        hook_for(alice, receiver.url)
        cursor()
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
        fan_out()
        sending.send_due()
    delivery = Delivery.objects.get()
    assert delivery.status == DeliveryStatus.PENDING and "Timeout" in delivery.last_error
    assert delivery.next_try_at > timezone.now()


def test_it_gives_up_after_the_last_attempt(alice, settings):
    settings.GPUQ_NOTIFY_MAX_ATTEMPTS = 2
    with WebhookReceiver(fail=10) as receiver:
        receiver.secret = hook_for(alice, receiver.url).secret
        cursor()
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
        fan_out()
        sending.send_due()
        sending.send_due(now=later())
        assert sending.send_due(now=later()) == 0
    delivery = Delivery.objects.get()
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 2)


def send_then_close():
    try:
        sending.send_due()
    finally:
        connection.close()  # this thread's own connection (the test database is dropped at the end)


def test_a_hanging_receiver_delays_no_scheduling(alice, node):
    """While the sending task is stuck in a receiver that holds its connection, a new job is placed by a
    tick and reaches running: sending holds no lock and runs in no tick, request or transition."""
    with WebhookReceiver() as receiver:
        receiver.hang = True
        receiver.secret = hook_for(alice, receiver.url).secret
        cursor()
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="exit code 1")
        fan_out()
        sender = threading.Thread(target=send_then_close)
        sender.start()
        try:
            assert receiver.holding.wait(30), "the receiver never got the request"
            job = make_job(alice)
            ticker.run(force=True, wait=True)
            job.refresh_from_db()
            assert job.status == Status.DISPATCHED
            transition(job, Status.RUNNING)  # what the executor does first
            assert Job.objects.get(pk=job.pk).status == Status.RUNNING
            assert sender.is_alive() and not receiver.release.is_set()  # still held meanwhile
        finally:
            receiver.release.set()
            sender.join(30)
    assert Delivery.objects.get().status == DeliveryStatus.DELIVERED


def test_the_node_loops_kick_queues_a_django_q_task_that_delivers(alice, monkeypatch):
    monkeypatch.setattr(Conf, "SYNC", True)  # the task runs at once, in this process
    with WebhookReceiver() as receiver:
        receiver.secret = hook_for(alice, receiver.url).secret
        Preference.objects.create(user=alice, kind=Kind.STARTED, webhook=True)
        cursor()
        job = make_job(alice, status=Status.DISPATCHED)
        transition(job, Status.RUNNING)

        assert sending.kick() is True
        wait_for(lambda: receiver.requests, message="the webhook request")
        assert sending.kick() is False  # nothing left to send

    delivery = Delivery.objects.get()
    assert (delivery.kind, delivery.channel, delivery.status) == (Kind.STARTED, Channel.WEBHOOK, "delivered")
    assert receiver.requests[0][1]["subject"].startswith(f"[gpuq] Job {job.pk} ")


def test_two_fan_outs_at_once_make_each_delivery_once(alice, monkeypatch):
    """A second fan-out (another node) moves the cursor while the first is between reading the events and
    writing their deliveries: the first one's compare-and-set fails and it writes nothing."""
    alice.email = "alice@example.org"
    alice.save()
    cursor()
    transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
    real = fanout.deliveries_for
    raced = []

    def racing(events):
        made = real(events)
        if not raced:
            raced.append(True)
            monkeypatch.setattr(fanout, "deliveries_for", real)
            assert fan_out() == 1  # the other node, in between
        return made

    monkeypatch.setattr(fanout, "deliveries_for", racing)
    assert fan_out() == 0 and raced
    assert Delivery.objects.count() == 1


def test_a_webhook_to_a_denied_address_is_not_sent(alice, settings):
    settings.GPUQ_NOTIFY_WEBHOOK_DENY = [ipaddress.ip_network("127.0.0.0/8")]
    with WebhookReceiver() as receiver:
        hook_for(alice, receiver.url)
        cursor()
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
        fan_out()
        sending.send_due()
    assert receiver.requests == []
    assert "in GPUQ_NOTIFY_WEBHOOK_DENY" in Delivery.objects.get().last_error


def test_a_bounded_fan_out_leaves_the_rest_for_the_next(alice):
    alice.email = "alice@example.org"
    alice.save()
    cursor()
    for _ in range(3):
        transition(make_job(alice, status=Status.RUNNING), Status.FAILED, reason="x")
    assert fan_out(limit=1, max_batches=2) == 2
    assert fan_out() == 1 and Delivery.objects.count() == 3
