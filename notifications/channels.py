"""Sending one delivery: by e-mail (Django's mail framework) or to a webhook (a body in the receiver's
shape, signed with HMAC-SHA256). Every connection has GPUQ_NOTIFY_TIMEOUT_SECONDS as its timeout; a
failure raises `SendError` (the sender retries later)."""

import hashlib
import hmac
import ipaddress
import json
import socket
import time
from urllib.parse import urlsplit

import httpx
from django.conf import settings
from django.core.mail import EmailMessage, get_connection

from notifications.models import Channel, Format

SIGNATURE_HEADER = "X-Gpuq-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
DISCORD_MAX = 2000  # characters of a Discord message's content


class SendError(Exception):
    pass


def http_client() -> httpx.Client:
    """One HTTP client for a batch of webhooks (making one per request costs more than the request)."""
    return httpx.Client(timeout=settings.GPUQ_NOTIFY_TIMEOUT_SECONDS, follow_redirects=False)


def send(delivery, http: httpx.Client) -> None:
    if delivery.channel == Channel.EMAIL:
        send_email(delivery)
    else:
        send_webhook(delivery, http)


def send_email(delivery) -> None:
    payload = delivery.payload
    message = EmailMessage(
        subject=payload["subject"],
        body=payload["text"],
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[delivery.target],
        # The same key on a resend (after a worker died mid-send), so mail clients can tell.
        headers={"X-Gpuq-Delivery": delivery.key, "X-Gpuq-Kind": delivery.kind},
    )
    try:
        connection = get_connection(
            settings.GPUQ_EMAIL_BACKEND, fail_silently=False, timeout=settings.GPUQ_NOTIFY_TIMEOUT_SECONDS
        )
        connection.send_messages([message])
    except Exception as error:  # smtplib, socket and TLS errors all mean: try again later
        raise SendError(f"e-mail to {delivery.target}: {type(error).__name__}: {error}") from error


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """The signature header's value: receivers compute the same HMAC and compare (README)."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def webhook_body(form: str, payload: dict) -> dict:
    """The JSON a receiver of this format expects."""
    text = payload["text"]
    if form == Format.SLACK:
        return {"text": text}
    if form == Format.DISCORD:
        return {"content": text[: DISCORD_MAX - 1] + "…" if len(text) > DISCORD_MAX else text}
    if form == Format.TEAMS:
        return {
            "@type": "MessageCard",
            "@context": "https://schema.org/extensions",
            "summary": payload["subject"],
            "title": payload["subject"],
            "text": text.replace("\n", "\n\n"),  # Teams' markdown needs blank lines between lines
        }
    return payload


def check_destination(url: str) -> None:
    """Refuse a URL whose host resolves to an address in GPUQ_NOTIFY_WEBHOOK_DENY. (The HTTP client
    resolves the name again: a name whose answer changes in between is not stopped by this.)"""
    parts = urlsplit(url)
    try:
        answers = socket.getaddrinfo(parts.hostname, parts.port or 443, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise SendError(f"webhook {url}: cannot resolve {parts.hostname}: {error}") from error
    for *_, address in answers:
        ip = ipaddress.ip_address(address[0].split("%")[0])
        if any(ip in network for network in settings.GPUQ_NOTIFY_WEBHOOK_DENY):
            raise SendError(f"webhook {url}: {parts.hostname} is {ip}, in GPUQ_NOTIFY_WEBHOOK_DENY")


def send_webhook(delivery, http: httpx.Client) -> None:
    hook = delivery.webhook
    if hook is None:
        raise SendError("the webhook was removed")
    check_destination(delivery.target)
    body = json.dumps(webhook_body(hook.format, delivery.payload), separators=(",", ":")).encode()
    now = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "gpuq-notifications",
        SIGNATURE_HEADER: signature(hook.secret, now, body),
        "X-Gpuq-Delivery": delivery.key,
        "X-Gpuq-Kind": delivery.kind,
    }
    try:
        response = http.post(delivery.target, content=body, headers=headers)
    except httpx.HTTPError as error:
        raise SendError(f"webhook {delivery.target}: {type(error).__name__}: {error}") from error
    if not response.is_success:
        raise SendError(f"webhook {delivery.target}: HTTP {response.status_code} {response.text[:200]}")
