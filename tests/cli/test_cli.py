"""The `gpuq` command line end to end: every command against a real gpuq (web server and node processes
on the test database), run as a subprocess the way a user runs it, its output parsed back."""

import csv
import http.server
import io
import json
import stat
import threading
import tomllib
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import schemathesis
from django.conf import settings

from tests import typed_client
from tests.conftest import JOB_PYTHON, job_writable, traversable_dir, wait_for
from tests.e2e.conftest import free_port
from tests.proxy import Proxy

pytestmark = [pytest.mark.processes, pytest.mark.django_db]  # see conftest: the database, no wrapping


def echo(message: str, code: int = 0) -> list[str]:
    """Arguments that submit the `echo` template (prints the message, exits with the code)."""
    return ["echo", "-p", f"message={message}", "-p", f"code={code}"]


def held(gpuq, *extra, user="alice") -> int:
    """A job that waits two hours (scheduled), so that it stays in the queue while a test looks."""
    return int(gpuq.ok("submit", "-q", *echo("later"), "--after", "+2h", *extra, user=user))


def show(gpuq, job_id: int, user="alice") -> dict:
    return gpuq.json("show", job_id, user=user)[0]


def api(gpuq, user="root") -> httpx.Client:
    return httpx.Client(
        base_url=gpuq.base + "/api/v1", headers={"Authorization": f"Token {gpuq.tokens[user]}"}
    )


def test_every_command_has_help_with_examples(gpuq):
    listing = gpuq.ok("--help", user=None)
    table = listing.split("Commands:")[1].strip().split("\n\n")[0]  # up to the exit codes
    commands = [line.split()[0] for line in table.splitlines()]
    assert {
        "login",
        "submit",
        "queue",
        "show",
        "logs",
        "cancel",
        "nodes",
        "gpus",
        "quota",
        "stats",
        "approvals",
    } <= set(commands)
    assert "Exit codes" in listing
    for command in commands:
        assert "Example" in gpuq.ok(command, "--help", user=None), command
    for sub in ("list", "create", "revoke"):
        assert "Example" in gpuq.ok("tokens", sub, "--help", user=None)


def test_the_console_script_is_declared_for_the_setup_to_install():
    project = tomllib.loads((settings.BASE_DIR / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["gpuq"] == "gpuq_cli.main:main"
    assert project["tool"]["setuptools"]["packages"] == ["gpuq_cli"]
    assert "pip install --quiet --no-deps -e ." in (settings.BASE_DIR / "scripts" / "setup").read_text()


def test_login_checks_the_token_and_stores_it_for_its_owner_only(gpuq, tmp_path):
    config = tmp_path / "conf" / "gpuq.json"
    refused = gpuq.run("login", "--url", gpuq.base, user=None, input="not-a-token\n", GPUQ_CONFIG=config)
    assert refused.returncode == 4, refused.stderr
    assert "401" in refused.stderr and not config.exists()
    no_url = gpuq.run("login", user=None, input=gpuq.tokens["alice"] + "\n", GPUQ_CONFIG=config)
    assert no_url.returncode == 2 and "--url" in no_url.stderr  # nothing to ask it on: a usage error
    nobody_there = f"http://127.0.0.1:{free_port()}"
    unreachable = gpuq.run("login", "--url", nobody_there, "--token", "x", user=None, GPUQ_CONFIG=config)
    assert unreachable.returncode == 3 and "cannot reach" in unreachable.stderr

    done = gpuq.run(
        "login", "--url", gpuq.base + "/", user=None, input=gpuq.tokens["alice"] + "\n", GPUQ_CONFIG=config
    )
    assert done.returncode == 0, done.stderr
    assert "as alice (researcher)" in done.stderr
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text()) == {"url": gpuq.base, "token": gpuq.tokens["alice"]}

    me = json.loads(gpuq.ok("whoami", "--format", "json", user=None, GPUQ_CONFIG=config))
    assert me == [
        {"username": "alice", "level": "researcher", "team": "vision", "is_admin": False, "can_submit": True}
    ]
    # GPUQ_URL and GPUQ_TOKEN win over the file.
    assert (
        gpuq.ok("whoami", "-o", "username", "--format", "csv", user="bob", GPUQ_CONFIG=config)
        == "username\nbob\n"
    )
    # Logged in nowhere: exit 4, saying how to log in.
    nowhere = gpuq.run("queue", user=None, GPUQ_CONFIG=tmp_path / "none.json")
    assert nowhere.returncode == 4 and "gpuq login" in nowhere.stderr


class _Broken(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(500)
        self.send_header("Content-Type", "text/html")
        self.end_headers()
        self.wfile.write(b"<h1>Server Error (500)</h1>")

    def log_message(self, *args):
        pass


def test_exit_codes_for_usage_refusals_bad_tokens_and_server_errors(gpuq):
    assert gpuq.run("submit").returncode == 2
    assert gpuq.run("submit", "echo", "--", "true").returncode == 2
    assert gpuq.run("priority", "1", "high").returncode == 2
    assert gpuq.run("cancel", "3", "--all").returncode == 2

    refused = gpuq.run("submit", *echo("x"), "--gpus", 2000)
    assert refused.returncode == 1
    assert "gpu_count (--gpus)" in refused.stderr and "1024" in refused.stderr
    missing = gpuq.run("show", 999999)
    assert missing.returncode == 1 and "404" in missing.stderr
    bad_token = gpuq.run("queue", user=None, GPUQ_URL=gpuq.base, GPUQ_TOKEN="wrong")
    assert bad_token.returncode == 4 and "401" in bad_token.stderr

    broken = http.server.HTTPServer(("127.0.0.1", 0), _Broken)
    threading.Thread(target=broken.serve_forever, daemon=True).start()
    try:
        failed = gpuq.run("queue", GPUQ_URL=f"http://127.0.0.1:{broken.server_port}")
    finally:
        broken.shutdown()
    assert failed.returncode == 3 and "500" in failed.stderr


def test_a_submit_whose_answer_was_lost_is_sent_again_and_makes_one_job(gpuq):
    """The server made the job but the answer never came back (the connection dropped): the CLI sends
    the same request again with the same Idempotency-Key and gets that job, not a second one."""
    port = int(gpuq.base.rsplit(":", 1)[1])
    proxy = Proxy("127.0.0.1", port)
    proxy.cut_after, proxy.lose_answer = b"POST /api/v1/jobs", True

    def come_back():  # once the answer has been lost, the server is reachable again
        wait_for(lambda: proxy.listener is None, timeout=60, message="the proxy to cut the answer")

        def restored():
            try:
                proxy.restore()
            except OSError:  # the port's last connections are still closing
                return False
            return True

        wait_for(restored, timeout=30, message="the proxy to listen again")

    helper = threading.Thread(target=come_back, daemon=True)
    helper.start()
    try:
        done = gpuq.run(
            "submit", "-q", *echo("once"), "--name", "lost-answer", GPUQ_URL=f"http://127.0.0.1:{proxy.port}"
        )
    finally:
        helper.join(timeout=60)
        proxy.close()
    assert done.returncode == 0, done.stderr
    assert "retrying" in done.stderr
    made = [j for j in gpuq.json("queue", "-a", "-o", "id,name") if j["name"] == "lost-answer"]
    assert [j["id"] for j in made] == [int(done.stdout)]


def test_submit_a_template_with_typed_params_then_show_and_read_its_log(gpuq):
    job = gpuq.json("submit", *echo("hello cli"), "--name", "greet", "--priority", 5)
    assert (job["params"], job["name"], job["priority"]) == ({"message": "hello cli", "code": 0}, "greet", 5)
    wait_for(
        lambda: show(gpuq, job["id"])["status"] == "completed", timeout=60, message="the job to complete"
    )

    assert "hello cli\n" in gpuq.ok("logs", job["id"])
    assert gpuq.ok("logs", job["id"], "-n", 1).splitlines()[-1:] == [
        gpuq.ok("logs", job["id"]).splitlines()[-1]
    ]
    text = gpuq.ok("show", job["id"])
    assert "status: completed" in text and "transitions:" in text and "-> running" in text
    rows = list(
        csv.DictReader(
            io.StringIO(
                gpuq.ok("show", job["id"], "-o", "id,status,params.message,exit_code", "--format", "csv")
            )
        )
    )
    assert rows == [
        {"id": str(job["id"]), "status": "completed", "params.message": "hello cli", "exit_code": "0"}
    ]
    finished = gpuq.json("queue", "-a", "--mine", "--status", "completed")
    assert job["id"] in [row["id"] for row in finished]


def test_metrics_prints_a_jobs_series_as_table_json_and_csv(gpuq):
    report = "import json, os; json.dump({'loss': 0.25, 'eval': {'acc': 0.9}}, open(os.environ['GPUQ_PROGRESS_FILE'], 'w'))"
    job_id = int(gpuq.ok("submit", "-q", "--", JOB_PYTHON, "-c", report, user="root"))
    wait_for(
        lambda: show(gpuq, job_id, user="root")["status"] == "completed", timeout=60, message="the job to end"
    )
    rows = list(csv.DictReader(io.StringIO(gpuq.ok("metrics", job_id, "--format", "csv", user="root"))))
    assert [(r["series"], r["value"], r["unit"]) for r in rows] == [
        ("eval.acc", "0.9", ""),
        ("loss", "0.25", ""),
    ]
    assert datetime.fromisoformat(rows[0]["at"].replace("Z", "+00:00")).tzinfo is not None
    only = gpuq.json("metrics", job_id, "--series", "loss", "--last", 1, user="root")
    assert [(r["series"], r["value"], r["attempt"]) for r in only] == [("loss", 0.25, 1)]
    assert "LOSS" not in gpuq.ok("metrics", job_id, user="root") and "SERIES" in gpuq.ok(
        "metrics", job_id, user="root"
    )
    assert gpuq.run("metrics", job_id, user="bob").returncode != 0  # not bob's to read


def test_every_submit_flag_reaches_the_job(gpuq):
    first = held(gpuq)
    job = gpuq.json(
        "submit", *echo("flags"), "--gpus", 2, "--priority", 3, "--time-limit", "1h30m", "--stall-timeout", "10m",
        "--name", "all-flags", "--env", "WANDB_PROJECT=cli-test", "--depends-on", first, "--after", "+2h",
        "--off-peak", "--resource", "model:x", "--preemptible", "--min-memory", "20GB", "--gpu-model", "*L4*",
        "--device", "1,2", "--label", "room=*", "--target", "auto", "--max-attempts", 2,
    )  # fmt: skip
    expected = {
        "gpu_count": 2, "priority": 3, "time_limit_seconds": 5400, "stall_timeout_seconds": 600,
        "name": "all-flags", "env": {"WANDB_PROJECT": "cli-test"}, "depends_on": [first], "off_peak_only": True,
        "resources": ["model:x"], "preemptible": True, "min_gpu_memory_mb": 20480, "gpu_model": "*L4*",
        "device_ids": [1, 2], "node_labels": {"room": "*"}, "target": "auto", "max_attempts": 2,
        "status": "scheduled",
    }  # fmt: skip
    assert {key: job[key] for key in expected} == expected
    start = datetime.fromisoformat(job["start_after"])
    assert timedelta(hours=1, minutes=50) < start - datetime.now(UTC) <= timedelta(hours=2)
    assert gpuq.ok("cancel", job["id"], first) == f"job {job['id']}: cancelled\njob {first}: cancelled\n"


def test_gang_flags_reach_the_job_and_a_gang_too_wide_is_refused_naming_the_flag(gpuq):
    job = gpuq.json("submit", *echo("gang"), "--nodes", 1, "--gpus-per-node", 2, "--after", "+2h")
    assert (job["nodes"], job["gpu_count"]) == (1, 2)
    gpuq.ok("cancel", job["id"])
    refused = gpuq.run("submit", *echo("gang"), "--nodes", 2, "--gpus-per-node", 1)
    assert refused.returncode == 1 and "nodes (--nodes)" in refused.stderr, refused.stderr


def test_dry_run_says_where_it_would_go_and_creates_nothing(gpuq):
    count = api(gpuq).get("/jobs").json()["count"]
    answer = gpuq.json("submit", "--dry-run", *echo("dry"), "--gpus", 2)
    assert answer["dry_run"] is True and answer["would_start"] is True and answer["node"] == "cli-node"
    assert gpuq.ok("submit", "--dry-run", *echo("dry")).startswith("would start now on cli-node (GPUs ")
    assert api(gpuq).get("/jobs").json()["count"] == count


def test_submit_wait_follows_the_log_and_exits_with_the_jobs_exit_code(gpuq):
    done = gpuq.run("submit", "--wait", *echo("going down", code=7))
    assert done.returncode == 7, (done.stdout, done.stderr)
    assert "going down" in done.stdout
    assert "failed (exit code 7)" in done.stderr


def test_submit_wait_on_a_job_cancelled_meanwhile_exits_5(gpuq):
    waiting = gpuq.popen("submit", "--wait", *echo("never"), "--after", "+2h")
    job_id = waiting.stderr.readline().split()[1]  # "job N submitted (scheduled, …)"
    assert gpuq.ok("cancel", job_id) == f"job {job_id}: cancelled\n"
    assert waiting.wait(timeout=60) == 5
    assert f"job {job_id} cancelled" in waiting.stderr.read()


def test_logs_follow_a_running_job_until_it_ends(gpuq):
    flags = job_writable(traversable_dir("gpuq-cli-flag"))
    code = (
        "import json, os, sys, time\n"
        "print('first', flush=True)\n"
        "json.dump({'fraction': 0.5}, open(os.environ['GPUQ_PROGRESS_FILE'], 'w'))\n"
        "while not os.path.exists(sys.argv[1]): time.sleep(0.05)\n"
        "print('second', flush=True)\n"
    )
    job_id = gpuq.ok("submit", "-q", "--", JOB_PYTHON, "-c", code, flags / "go", user="root").strip()
    follower = gpuq.popen("logs", "-f", job_id, user="root")
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(follower.stdout), daemon=True)
    reader.start()
    wait_for(lambda: "first\n" in lines, timeout=60, message="the first line to be followed")

    # Meanwhile the queue shows its progress with dot notation.
    def progress():
        table = gpuq.ok("queue", "-o", "id,owner,status,progress.fraction", "--format", "csv", user="root")
        return [row for row in csv.DictReader(io.StringIO(table)) if row["id"] == job_id]

    row = wait_for(lambda: (lambda r: r and r[0]["progress.fraction"] == "0.5" and r)(progress()), timeout=30)
    assert row == [{"id": job_id, "owner": "root", "status": "running", "progress.fraction": "0.5"}]

    (flags / "go").touch()
    assert follower.wait(timeout=60) == 0
    reader.join(timeout=10)
    assert lines.index("first\n") < lines.index("second\n")
    assert lines[-1].startswith("=== gpuq: completed (exit code 0)")  # the log's last line, by the executor
    (flags / "go").unlink()


def test_queue_filters_and_formats(gpuq):
    mine = [held(gpuq, "--name", f"q-{i}") for i in range(2)]
    bobs = held(gpuq, "--name", "q-bob", user="bob")
    try:
        table = gpuq.ok("ls").splitlines()
        assert table[0].split()[:4] == ["ID", "NAME", "OWNER", "STATUS"] and "WAIT_REASON" in table[0]
        assert {str(i) for i in [*mine, bobs]} <= {line.split()[0] for line in table[1:]}

        rows = gpuq.json("queue", "--mine")
        assert {r["id"] for r in rows} >= set(mine) and {r["owner"] for r in rows} == {"alice"}
        assert all("estimated_start" in r and "position" in r for r in rows)

        by_bob = gpuq.json("queue", "--owner", "bob", "--status", "scheduled", "-o", "job_id,user,status")
        assert by_bob == [{"job_id": bobs, "user": "bob", "status": "scheduled"}]

        text = gpuq.ok("queue", "--mine", "--format", "csv", "-o", "id,name,params.message,gpu_indices")
        got = {row["id"]: row for row in csv.DictReader(io.StringIO(text))}
        assert got[str(mine[0])] == {
            "id": str(mine[0]),
            "name": "q-0",
            "params.message": "later",
            "gpu_indices": "[]",
        }
    finally:
        gpuq.ok("cancel", *mine)
        gpuq.ok("cancel", bobs, user="bob")


def test_cancel_all_asks_first(gpuq):
    sweep = [held(gpuq, "--name", f"sweep-{i}") for i in range(2)]
    other = held(gpuq, "--name", "keep-me")
    declined = gpuq.run("cancel", "--all", "--name", "sweep-*", input="n\n")
    assert declined.returncode == 1
    assert f"Cancel 2 job(s) of alice: {sweep[0]} (scheduled), {sweep[1]} (scheduled)?" in declined.stderr
    assert {show(gpuq, i)["status"] for i in sweep} == {"scheduled"}

    accepted = gpuq.run("cancel", "--all", "--name", "sweep-*", input="y\n")
    assert accepted.returncode == 0, accepted.stderr
    assert {show(gpuq, i)["status"] for i in sweep} == {"cancelled"}
    assert show(gpuq, other)["status"] == "scheduled"

    third = held(gpuq, "--name", "sweep-3")
    assert gpuq.ok("cancel", "--all", "--name", "sweep-*", "--yes") == f"job {third}: cancelled\n"
    assert gpuq.ok("cancel", other) == f"job {other}: cancelled\n"


def test_priority_pause_and_resume(gpuq):
    job = held(gpuq)
    assert gpuq.ok("priority", job, 2, "--reason", "others first") == f"job {job}: priority 2\n"
    assert show(gpuq, job)["priority"] == 2
    raised = gpuq.run("priority", job, 50)
    assert raised.returncode == 1 and "priority" in raised.stderr
    assert gpuq.ok("priority", job, "--", -5) == f"job {job}: priority -5\n"
    assert gpuq.ok("pause", job, "--reason", "not now") == f"job {job}: paused\n"
    # Back to waiting for its --after, as before the pause.
    assert gpuq.ok("resume", job) == f"job {job}: scheduled\n"


def test_approve_and_reject(gpuq):
    policy = (
        api(gpuq).post("/policies", json={"type": "approval", "config": {"levels": ["researcher"]}}).json()
    )
    try:
        first, second = held(gpuq), held(gpuq)
        assert show(gpuq, first)["status"] == "blocked"
        inbox = gpuq.json("approvals", "-o", "id,owner,rule", user="root")
        assert [row["id"] for row in inbox] == [first, second] and inbox[0]["owner"] == "alice"
        assert "researcher" in inbox[0]["rule"]
        assert gpuq.run("approvals").returncode == 1  # a researcher has no inbox: 403
        own = gpuq.run("approve", first)
        assert own.returncode == 1 and "403" in own.stderr
        assert gpuq.run("reject", second, user="root").returncode == 2  # --reason is required
        assert gpuq.ok("approve", first, user="root") == f"job {first}: scheduled\n"
        assert gpuq.ok("reject", second, "--reason", "too big", user="root") == f"job {second}: rejected\n"
        gpuq.ok("cancel", first)
    finally:
        api(gpuq).delete(f"/policies/{policy['id']}")


def test_nodes_gpus_quota_stats_and_templates(gpuq):
    nodes = gpuq.json("nodes")
    assert [(n["name"], n["status"], n["gpus"], n["simulated"]) for n in nodes] == [
        ("cli-node", "online", 4, True)
    ]
    assert "cli-node" in gpuq.ok("nodes")
    devices = list(csv.DictReader(io.StringIO(gpuq.ok("gpus", "--format", "csv"))))
    assert [(d["node"], d["index"], d["name"]) for d in devices] == [
        ("cli-node", str(i), "NVIDIA L4") for i in range(4)
    ]
    assert {"allocated", "job_id", "owner"} <= set(devices[0])

    quota = gpuq.json("quota")
    assert quota["user"]["daily"]["limit_gpu_seconds"] is None and quota["team"]["name"] == "vision"
    assert [line.split()[:2] for line in gpuq.ok("quota").splitlines()[1:]] == [
        ["you", "daily"], ["you", "weekly"], ["vision", "daily"], ["vision", "weekly"]
    ]  # fmt: skip

    stats = gpuq.json("stats")
    assert {"queue_depth", "running", "by_status", "avg_wait_seconds"} <= set(stats)
    assert "queue_depth:" in gpuq.ok("stats")
    assert gpuq.json("templates", "-o", "name") == [{"name": "echo"}]


def test_tokens_create_list_and_revoke(gpuq):
    key = gpuq.ok("tokens", "create", "--name", "cli-test", "--days", 1).strip()
    assert (
        gpuq.ok("whoami", "-o", "username", "--format", "csv", user=None, GPUQ_URL=gpuq.base, GPUQ_TOKEN=key)
        == "username\nalice\n"
    )
    made = [t for t in gpuq.json("tokens", "list") if t["name"] == "cli-test"]
    assert len(made) == 1 and made[0]["expired"] is False and key.startswith(made[0]["hint"])
    assert "cli-test" in gpuq.ok("tokens")
    assert gpuq.run("tokens", "revoke", made[0]["id"]).returncode == 0
    gone = gpuq.run("whoami", user=None, GPUQ_URL=gpuq.base, GPUQ_TOKEN=key)
    assert gone.returncode == 4


def test_rate_limited_requests_wait_for_retry_after_and_go_on(gpuq, start_web):
    job = held(gpuq)
    throttled = start_web(GPUQ_THROTTLE_USER="1/s")
    done = gpuq.run("show", job, job, job, job, "-o", "id", "--format", "csv", GPUQ_URL=throttled)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "id\n" + f"{job}\n" * 4
    assert "rate limited (429), retrying in 1 s" in done.stderr
    gpuq.ok("cancel", job)


def test_admins_manage_users_and_teams(gpuq):
    gpuq.ok("teams", "create", "cli-team", user="root")
    gpuq.ok("users", "create", "cli-lena", "--level", "lead", "--team", "cli-team", user="root")
    gpuq.ok("users", "set", "cli-lena", "--unix-username", "lena", "--raw-commands", user="root")
    lena = gpuq.json("users", "list", "--team", "cli-team", user="root")
    assert [(u["username"], u["level"], u["unix_username"], u["can_submit_raw"]) for u in lena] == [
        ("cli-lena", "lead", "lena", True)
    ]
    assert {"name": "cli-team", "member_count": 1} in gpuq.json("teams", "list", user="root")
    refused = gpuq.run("teams", "delete", "cli-team", user="root")
    assert refused.returncode != 0 and "member" in refused.stderr
    gpuq.ok("users", "set", "cli-lena", "--no-team", "--inactive", user="root")
    gpuq.ok("teams", "rename", "cli-team", "cli-team2", user="root")
    gpuq.ok("teams", "delete", "cli-team2", user="root")
    # Others are refused, with the server's reason.
    denied = gpuq.run("users", user="alice")
    assert denied.returncode != 0 and "Only admins" in denied.stderr
    for sub in ("list", "create", "set"):
        assert "Example" in gpuq.ok("users", sub, "--help", user=None)


def test_a_sweep_over_a_grid_runs_one_job_per_combination_and_is_shown_as_one(gpuq):
    made = gpuq.json("submit", "echo", "--sweep", "message=a,b", "--sweep", "code=[0, 3]")
    sweep = made["sweep"]
    assert sweep["size"] == 4 and [j["name"] for j in made["jobs"]] == [f"echo[{i}]" for i in range(4)]
    wait_for(
        lambda: gpuq.json("sweep", "show", sweep["id"])["finished"], timeout=120, message="the sweep to end"
    )
    shown = gpuq.json("sweep", "show", sweep["id"])
    assert shown["counts"] == {"completed": 2, "failed": 2}
    assert [show(gpuq, j["id"])["params"] for j in made["jobs"]] == [
        {"message": "a", "code": 0},
        {"message": "a", "code": 3},
        {"message": "b", "code": 0},
        {"message": "b", "code": 3},
    ]
    text = gpuq.ok("sweep", "show", sweep["id"])
    assert "counts: completed=2, failed=2" in text and "finished: yes" in text


def test_a_sweep_from_a_file_of_parameter_sets_is_cancelled_as_one(gpuq):
    sets = json.dumps([{"message": "x"}, {"message": "y"}, {"message": "z"}])
    sweep_id = int(
        gpuq.ok("submit", "-q", "echo", "-p", "code=0", "--after", "+2h", "--sweep-file", "-", input=sets)
    )
    assert gpuq.json("sweep", "show", sweep_id)["counts"] == {"scheduled": 3}
    after = gpuq.json("submit", *echo("after"), "--depends-on-sweep", sweep_id)
    assert len(after["depends_on"]) == 3 and after["wait_reason"] in ("", "dependency")
    assert gpuq.run("sweep", "cancel", sweep_id, user="bob").returncode == 1  # not bob's: 404
    cancelled = gpuq.json("sweep", "cancel", sweep_id, "--reason", "wrong data")
    assert cancelled["cancelled"] == 3 and cancelled["counts"] == {"cancelled": 3}


def test_a_file_of_jobs_is_all_or_nothing_naming_each_bad_job(gpuq, tmp_path):
    jobs = [
        {"template": "echo", "params": {"message": "ok", "code": 0}, "start_after": "2099-01-01T00:00:00Z"}
    ]
    path = tmp_path / "jobs.json"
    path.write_text(json.dumps([*jobs, {"template": "echo", "params": {"message": 1}}]))
    before = len(api(gpuq).get("/jobs", params={"limit": 500}).json()["results"])
    refused = gpuq.run("submit", "--file", path)
    assert refused.returncode == 1 and "job 1: params (-p):" in refused.stderr, refused.stderr
    assert len(api(gpuq).get("/jobs", params={"limit": 500}).json()["results"]) == before
    path.write_text(json.dumps(jobs * 2))
    line = gpuq.ok("submit", "--file", path)
    assert line.startswith("sweep ") and "2 jobs echo[0-1]" in line and "2 scheduled" in line
    usage = gpuq.run("submit", "echo", "--file", path)
    assert usage.returncode == 2


def test_simulate_compares_policy_sets_on_a_trace_for_admins_only(gpuq, tmp_path):
    trace = tmp_path / "trace.csv"
    trace.write_text(
        "submit_time,gpus,runtime,user,time_limit\n0,2,100,xavier,100\n10,3,100,yann,100\n"
        "20,1,50,zoe,50\n30,1,50,zoe,200\n"
    )
    sets = tmp_path / "sets.json"
    sets.write_text(json.dumps({"sjf": {"backfill": {}, "ordering": {"within_priority": "shortest_limit"}}}))
    rows = gpuq.json("simulate", "--trace", trace, "--policies", sets, "--nodes", "3", user="root")
    table = {row["set"]: row for row in rows}
    assert list(table) == ["strict FIFO", "backfill", "present", "sjf"]
    assert table["strict FIFO"]["mean_wait_min"] == 1.8 and table["strict FIFO"]["out_of_order"] == 0
    assert table["backfill"]["gpus_1"] == "1.4/2.8/3" and table["backfill"]["out_of_order"] == 1
    text = gpuq.ok("simulate", "--trace", trace, "--nodes", "3", "-o", "set,gpus_1", user="root")
    assert text.splitlines()[1].split() == ["strict", "FIFO", "2.9/3.0/3"]
    sim_id = int(gpuq.ok("simulate", "--trace", trace, "--nodes", "3", "--no-wait", user="root"))
    assert "backfill" in gpuq.ok("simulate", "--show", sim_id, user="root")
    refused = gpuq.run("simulate", "--trace", trace, "--nodes", "3")  # alice is no admin
    assert refused.returncode == 1 and "permission" in refused.stderr.lower(), refused.stderr
    bad = gpuq.run("simulate", "--trace", trace, "--nodes", "0", user="root")
    assert bad.returncode == 1 and "nodes" in bad.stderr, bad.stderr
    assert gpuq.run("simulate", "--nodes", "3", user="root").returncode == 2


def test_every_answer_the_cli_saw_matches_the_published_schema(gpuq, tmp_path):
    """Last in this module: every API answer the commands above got (through the recording proxy) is
    one the schema describes, body and status, and one that a typed client generated from the schema
    (pydantic models, undeclared fields forbidden) parses."""
    gpuq.ok("queue")  # something to check when this test runs alone
    published = httpx.get(
        f"{gpuq.base}/api/v1/schema/?format=json",
        headers={"Authorization": f"Token {gpuq.tokens['root']}"},
        timeout=120,
    ).json()
    schema = schemathesis.openapi.from_dict(published)
    with_models, response_models = typed_client.responses_named(published)
    models = typed_client.generate(with_models, tmp_path)
    answers = [
        a
        for a in list(gpuq.recorder.answers)
        if a.request.url.path.startswith("/api/v1/") and not a.request.url.path.startswith("/api/v1/schema")
    ]
    problems = []
    for answer in answers:
        label = f"{answer.request.method} {answer.request.url.path} → {answer.status_code}"
        operation = schema.find_operation_by_path(answer.request.method, answer.request.url.path)
        if operation is None:
            problems.append(f"{label}: no such operation in the schema")
            continue
        try:
            operation.validate_response(answer)
        except (Exception, BaseExceptionGroup) as failure:
            problems.append(f"{label}: {str(failure)[:1500]}")
        component = response_models.get((answer.request.method, operation.path, str(answer.status_code)))
        if component is None:
            if answer.headers.get("content-type", "").startswith("application/json"):
                problems.append(f"{label}: a JSON answer with no JSON body in the schema")
        elif problem := typed_client.parse_problem(models, component, answer):
            problems.append(f"{label} (typed client): {problem}")
    assert len(answers) > 20
    assert not problems, "\n\n".join(problems)
