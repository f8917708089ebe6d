"""How much one user's submission flood slows another user's requests, with gpuq's throttles on.

Starts real `gpuq_web` (Daphne) processes on a fresh SQLite database in a temporary folder (or on the
PostgreSQL database given with --database-url, which it migrates and fills: give it an empty one), with a
node record so that submissions are accepted (no node process: jobs wait). User B polls
`GET /api/v1/queue/me` at a steady rate and times each answer, in slices that alternate: B alone; B while
user A posts `POST /api/v1/jobs` back to back from several threads (in another process) to B's server;
and, as a control, B while A floods another gpuq_web process on the same machine, which shows how much
of the slowdown is the machine's CPU rather than B's server. A spends its submit budget first, one
submission at a time, so the flood is a throttled user's (its budget comes back as the window slides).
Unless --no-unthrottled, the same flood against a server with every throttle off, to show what the
throttles save. The issue's target: the flood slows B by no more than 10%.

    .venv/bin/python benchmarks/throttle.py [--seconds 12] [--rounds 4] [--threads 4] [--rate 10]
                                            [--no-unthrottled] [--database-url URL]
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import percentile, setup_django  # benchmarks/ is on sys.path when run as a script

ROOT = Path(__file__).resolve().parent.parent
THROTTLES = (
    "GPUQ_THROTTLE_USER",
    "GPUQ_THROTTLE_ANON",
    "GPUQ_THROTTLE_SUBMIT",
    "GPUQ_THROTTLE_AUTH_FAILURES",
)

# The flooder, in its own process: its threads post back to back to the server named by the last
# "go URL" line read on stdin, pause on "stop", and on "quit" print how the servers answered them.
FLOOD = """
import collections, json, sys, threading
import httpx
key, threads = sys.argv[1], int(sys.argv[2])
body = {"template": "echo", "params": {"text": "flood"}}
counts = collections.Counter()
target = {"url": None}
going, done = threading.Event(), threading.Event()
def flood():
    clients = {}
    while not done.is_set():
        if going.wait(0.1):
            url = target["url"]
            client = clients.get(url) or clients.setdefault(
                url, httpx.Client(base_url=url, headers={"Authorization": "Token " + key}, timeout=30)
            )
            counts[url + " " + str(client.post("/api/v1/jobs", json=body).status_code)] += 1
workers = [threading.Thread(target=flood) for _ in range(threads)]
for w in workers: w.start()
for line in sys.stdin:
    command = line.split()
    if command[0] == "go": target["url"] = command[1]; going.set()
    elif command[0] == "stop": going.clear()
    elif command[0] == "quit": break
going.clear(); done.set()
for w in workers: w.join()
print(json.dumps(dict(sorted(counts.items()))))
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=12, help="B's time in each condition")
    parser.add_argument("--rounds", type=int, default=4, help="alternations of the conditions")
    parser.add_argument("--threads", type=int, default=4, help="the flooder's threads")
    parser.add_argument("--rate", type=float, default=10, help="B's requests per second")
    parser.add_argument("--no-unthrottled", action="store_true", help="skip the server without throttles")
    parser.add_argument("--database-url", default="")
    args = parser.parse_args()

    for name in THROTTLES:  # the production defaults, whatever this shell holds
        os.environ.pop(name, None)
    setup_django("gpuq-throttle-", args.database_url)
    import httpx
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    from accounts.models import ApiToken
    from gpus.inventory import parse_declared
    from gpus.services import node_register
    from scheduling.models import JobTemplate
    from tests.conftest import make_user

    call_command("migrate", verbosity=0)
    tag = os.getpid()
    flooder, victim = make_user(f"flooder-{tag}"), make_user(f"victim-{tag}")
    _, flood_key = ApiToken.issue(user=flooder)
    _, victim_key = ApiToken.issue(user=victim)
    JobTemplate.objects.get_or_create(
        name="echo",
        defaults={
            "argv_template": ["echo", "{text}"],
            "params_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
        },
    )
    # A node with GPUs (no process behind it: jobs wait pending), so that submissions are accepted.
    name = f"throttle-{tag}"
    node_register(
        name=name, backend="declared", gpus=parse_declared("2x24GB", node_name=name), labels={}, boot_id=""
    )
    env = {**os.environ, "SECRET_KEY": settings.SECRET_KEY}  # one key for every process of this gpuq
    if connection.vendor == "sqlite":
        env["DATABASE_URL"] = f"sqlite:///{connection.settings_dict['NAME']}"
    servers = []

    def serve(port, extra_env):
        server = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "gpuq_web", "--port", str(port)],
            env={**env, **extra_env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        servers.append(server)
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/accounts/login/", timeout=1)
                return url
            except httpx.TransportError:
                time.sleep(0.1)
        raise SystemExit("gpuq_web did not start")

    def measure(url, seconds):
        """B's latencies (ms) at a steady rate for `seconds`; B must never be refused."""
        client = httpx.Client(base_url=url, headers={"Authorization": f"Token {victim_key}"}, timeout=30)
        client.get("/api/v1/queue/me")  # warm up the connection
        latencies, period, n = [], 1 / args.rate, 0
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            began = time.perf_counter()
            response = client.get("/api/v1/queue/me")
            latencies.append((time.perf_counter() - began) * 1000)
            if response.status_code != 200:
                raise SystemExit(f"B was answered {response.status_code}: {response.text}")
            n += 1
            time.sleep(max(0.0, start + n * period - time.monotonic()))
        return latencies

    def spend_submit_budget(url):
        """A submits one at a time until refused: the flood then meets the submit limit at once."""
        client = httpx.Client(base_url=url, headers={"Authorization": f"Token {flood_key}"}, timeout=30)
        accepted, body = 0, {"template": "echo", "params": {"text": "x"}}
        while (code := client.post("/api/v1/jobs", json=body).status_code) == 201:
            accepted += 1
        if code != 429:
            raise SystemExit(f"A was answered {code}")
        return accepted

    def alternate(url, floods: dict[str, str]):
        """B's latencies on `url`: alone, and while A floods each of `floods` (label: url), in slices
        that alternate, so that a change in the machine's other load lands on all of them."""
        flood = subprocess.Popen(
            [sys.executable, "-c", FLOOD, flood_key, str(args.threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        seconds = args.seconds / args.rounds
        latencies = {"alone": [], **{label: [] for label in floods}}
        try:
            for _ in range(args.rounds):
                latencies["alone"] += measure(url, seconds)
                for label, target in floods.items():
                    flood.stdin.write(f"go {target}\n")
                    flood.stdin.flush()
                    time.sleep(0.3)  # let the flood get going
                    latencies[label] += measure(url, seconds)
                    flood.stdin.write("stop\n")
                    flood.stdin.flush()
                    time.sleep(0.3)
        finally:
            out, _ = flood.communicate("quit\n", timeout=60)
        return latencies, json.loads(out)

    port = 8600 + tag % 500
    try:
        throttled, other = serve(port, {}), serve(port + 500, {})
        measure(throttled, 1)  # warm up: imports, first queries
        accepted = spend_submit_budget(throttled)
        spend_submit_budget(other)
        on = alternate(
            throttled, {"A floods B's server": throttled, "A floods another server (control)": other}
        )
        off = None
        if not args.no_unthrottled:
            unthrottled = serve(port + 250, {name: "" for name in THROTTLES})
            measure(unthrottled, 1)
            off = alternate(unthrottled, {"A floods B's server": unthrottled})
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=10)

    print(
        f"B: GET /api/v1/queue/me at {args.rate:g}/s; A: POST /api/v1/jobs back to back from {args.threads} "
        f"threads in another process; {connection.vendor}; one gpuq_web process per server; "
        f"{args.rounds} rounds of {args.seconds / args.rounds:g} s slices"
    )
    print(
        f"A spent its submit budget first: {accepted} accepted one by one, then 429 "
        f"(GPUQ_THROTTLE_SUBMIT={settings.GPUQ_THROTTLE_SUBMIT}, GPUQ_THROTTLE_USER={settings.GPUQ_THROTTLE_USER})"
    )
    for title, result in (("throttles on (defaults)", on), ("throttles off", off)):
        if result is None:
            continue
        latencies, answers = result
        print(f"{title}: A's answers {answers}")
        a50, a95 = statistics.median(latencies["alone"]), percentile(latencies["alone"], 95)
        for label, values in latencies.items():
            p50, p95 = statistics.median(values), percentile(values, 95)
            print(
                f"  B, {label:<36} n={len(values):<4} p50 {p50:6.1f} ms  p95 {p95:6.1f} ms"
                f"  ratio to alone: p50 {p50 / a50:.2f}x  p95 {p95 / a95:.2f}x"
            )


if __name__ == "__main__":
    main()
