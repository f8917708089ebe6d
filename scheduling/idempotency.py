"""Submits that may be retried: an `Idempotency-Key` names one submit of a user, so a client that saw an
error (a lost reply, a 503 after the commit) retries it and gets the job (or, for a bulk submit, the
sweep) it made instead of a second."""

import hashlib
import json
from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from scheduling.models import IdempotencyKey, Job, Sweep

HEADER = "Idempotency-Key"
MAX_LENGTH = 200


class KeyReused(Exception):
    """The key was used for another request body (API: 422 naming the header)."""


def check_key(key: str) -> str:
    if not 1 <= len(key) <= MAX_LENGTH or not all(" " <= c <= "~" for c in key):
        raise ValidationError({HEADER: f"1 to {MAX_LENGTH} printable ASCII characters"})
    return key


def request_hash(body) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def submit_once(*, user, key: str, body_hash: str, submit) -> tuple[Job | Sweep, bool]:
    """The job (or sweep) of this user's `key`: the one made by an earlier submit with it (created
    False), else the one `submit()` makes now (created True). The key is inserted in the job's own transaction and is
    unique per user, so two concurrent submits with one key make one job: the loser's insert fails,
    its transaction (job included) rolls back and it returns the winner's job."""
    cutoff = timezone.now() - timedelta(hours=settings.GPUQ_IDEMPOTENCY_HOURS)
    earlier = _find(user, key, cutoff)
    if earlier is not None:
        return _replay(earlier, body_hash), False
    try:
        with transaction.atomic():
            # Retention: keys older than the period are forgotten (and may be used again).
            IdempotencyKey.objects.filter(created_at__lt=cutoff).delete()
            job = submit()
            made = {"sweep": job} if isinstance(job, Sweep) else {"job": job}
            IdempotencyKey.objects.create(user=user, key=key, request_hash=body_hash, **made)
    except IntegrityError:
        earlier = _find(user, key, cutoff)
        if earlier is None:
            raise
        return _replay(earlier, body_hash), False
    return job, True


def _find(user, key: str, cutoff) -> IdempotencyKey | None:
    return (
        IdempotencyKey.objects.filter(user=user, key=key, created_at__gte=cutoff)
        .select_related("job", "sweep")
        .first()
    )


def _replay(earlier: IdempotencyKey, body_hash: str) -> Job | Sweep:
    if earlier.request_hash != body_hash:
        made = f"job {earlier.job_id}" if earlier.job_id else f"sweep {earlier.sweep_id}"
        raise KeyReused(
            f"{HEADER}: already used for a different request ({made}); "
            "send the same body to retry it, or a new key for a new job"
        )
    return earlier.job or earlier.sweep
