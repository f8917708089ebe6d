"""The HTTP side of `gpuq`: one client for the REST API, the exit codes, and server errors turned into
messages that name the field (and the flag that sets it)."""

import time

import click
import httpx

from gpuq_cli import __version__
from gpuq_cli.config import Config

# Exit codes a script can rely on (README: "The gpuq command line").
OK = 0
REFUSED = 1  # the server said no (a 4xx other than 401): its message, naming the field, on stderr
USAGE = 2  # bad command line (click's own code for usage errors)
UNREACHABLE = 3  # no answer from the server, or a 5xx
NOT_LOGGED_IN = 4  # no URL or token, or the server refused the token (401)
NO_EXIT_CODE = 5  # `submit --wait`: the job ended without an exit code of its own (cancelled, rejected…)

# 429: wait as the server says (Retry-After), at most this many times and this long each.
RETRIES = 5
LONGEST_WAIT = 120

# The command-line flag that sets each API field, so that "gpu_count" in an error leads to "--gpus".
FLAGS = {
    "gpu_count": "--gpus",
    "nodes": "--nodes",
    "gpus_per_node": "--gpus-per-node",
    "priority": "--priority",
    "time_limit_seconds": "--time-limit",
    "stall_timeout_seconds": "--stall-timeout",
    "name": "--name",
    "env": "--env",
    "depends_on": "--depends-on",
    "depends_on_sweeps": "--depends-on-sweep",
    "start_after": "--after",
    "off_peak_only": "--off-peak",
    "resources": "--resource",
    "preemptible": "--preemptible",
    "min_gpu_memory_mb": "--min-memory",
    "gpu_model": "--gpu-model",
    "device_ids": "--device",
    "node_labels": "--label",
    "target": "--target",
    "max_attempts": "--max-attempts",
    "params": "-p",
    "template": "TEMPLATE",
    "argv": "the command after --",
    "no_wait": "--no-wait",
}


class Failure(click.ClickException):
    """Ends the command with a message on stderr and one of the exit codes above."""

    def __init__(self, message: str, code: int = REFUSED):
        super().__init__(message)
        self.exit_code = code

    def show(self, file=None) -> None:
        click.echo(f"gpuq: {self.format_message()}", err=True)


def describe_errors(body, flags: dict[str, str] = FLAGS) -> str:
    """A DRF error body as lines `field (--flag): message`; `detail` alone as its text."""
    if not isinstance(body, dict):
        return "; ".join(map(str, body)) if isinstance(body, list) else str(body)
    lines = []
    for field, problem in body.items():
        if field == "retry_after":
            continue
        text = _flatten(problem)
        if field == "errors" and isinstance(problem, dict):  # a bulk submission's, by job index
            lines.extend(
                f"job {index}: {describe_errors(errors, flags)}" for index, errors in problem.items()
            )
        elif field in ("detail", "non_field_errors"):
            lines.append(text)
        else:
            flag = flags.get(field)
            lines.append(f"{field} ({flag}): {text}" if flag else f"{field}: {text}")
    return "\n".join(lines)


def _flatten(problem) -> str:
    if isinstance(problem, list):
        return " ".join(_flatten(p) for p in problem)
    if isinstance(problem, dict):
        return "; ".join(f"{key}: {_flatten(value)}" for key, value in problem.items())
    return str(problem)


class Api:
    """GET/POST/DELETE on /api/v1/…; returns the decoded body or raises Failure with the right code."""

    def __init__(self, config: Config, timeout: float = 30, retries: int = RETRIES):
        """`retries`: how often a request is sent again after a dropped connection, a 429 or a 503."""
        if not config.url or not config.token:
            raise Failure("not logged in: run `gpuq login` (or set GPUQ_URL and GPUQ_TOKEN)", NOT_LOGGED_IN)
        self.url = config.url
        self.retries = retries
        self.http = httpx.Client(
            base_url=config.url + "/api/v1",
            headers={"Authorization": f"Token {config.token}", "User-Agent": f"gpuq-cli/{__version__}"},
            timeout=timeout,
        )

    def get(self, path: str, **params):
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def all(self, path: str, limit: int | None = None, **filters) -> list[dict]:
        """The rows of a paged list (`{count, next, previous, results}`), page after page, up to
        `limit` rows."""
        found, offset = [], 0
        while limit is None or len(found) < limit:
            size = 200 if limit is None else min(200, limit - len(found))
            page = self.get(path, limit=size, offset=offset, **filters)
            found += page["results"]
            offset += len(page["results"])
            if not page["results"] or not page.get("next"):
                break
        return found

    def post(self, path: str, body: dict | None = None, *, idempotency_key: str | None = None):
        """With `idempotency_key` the server makes one job however often the request is retried, so
        a POST that met a dropped connection or a 503 is sent again (the README: Idempotency-Key)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        return self.request(
            "POST", path, json=body if body is not None else {}, headers=headers, safe=bool(idempotency_key)
        )

    def delete(self, path: str):
        return self.request("DELETE", path)

    def request(self, method: str, path: str, *, safe: bool | None = None, **kwargs):
        """Send once, and again (at most RETRIES times) after a 429, a 503 (the database is away) or, for
        requests safe to repeat (GET, or a POST with an idempotency key), a dropped connection."""
        safe = method == "GET" if safe is None else safe
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self.http.request(method, path, **kwargs)
            except httpx.TransportError as error:
                if not safe or last:
                    raise Failure(f"cannot reach {self.url}: {error}", UNREACHABLE) from None
                click.echo(f"gpuq: {error}; retrying in {2**attempt} s", err=True)
                time.sleep(2**attempt)
                continue
            retryable = response.status_code == 429 or (response.status_code == 503 and safe)
            if retryable and not last:
                wait = _retry_after(response)
                if wait <= LONGEST_WAIT:
                    why = "rate limited" if response.status_code == 429 else "server unavailable"
                    click.echo(f"gpuq: {why} ({response.status_code}), retrying in {wait:g} s", err=True)
                    time.sleep(wait)
                    continue
            return self._decode(response)
        raise AssertionError("unreachable")

    def _decode(self, response: httpx.Response):
        code = response.status_code
        try:
            body = response.json() if response.content else None
        except ValueError:
            body = None
        if code < 400:
            return body
        what = f"{code} {response.reason_phrase}".strip()
        if body is not None:
            message = describe_errors(body)
        else:
            # Not JSON (a proxy's page, an HTML error): its first line is what a person can use.
            message = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        message = f"{what}: {message}" if message else what
        if code == 401:
            raise Failure(f"{message}\n(run `gpuq login` with a valid token)", NOT_LOGGED_IN)
        if code >= 500:
            raise Failure(f"server error {message}", UNREACHABLE)
        if code == 429:
            raise Failure(
                f"{message} (still rate limited; gpuq waits at most {RETRIES} times, {LONGEST_WAIT} s each)",
                REFUSED,
            )
        raise Failure(message, REFUSED)


def _retry_after(response: httpx.Response) -> float:
    raw = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(raw))
    except ValueError:
        try:
            return float(response.json().get("retry_after", 1))
        except (ValueError, AttributeError, TypeError):
            return 1.0
