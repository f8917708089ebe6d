"""Check gpuq against a real NVIDIA GPU: what the test suite can only fake (NVML without a GPU).

Run it on a machine with an NVIDIA driver, a GPU and a Python that has PyTorch (the jobs use it to take
GPU memory), from the checkout, with gpuq's packages importable:

    .venv/bin/python scripts/gpu_check.py [--job-python /path/to/python-with-torch] [--port 8765]

It starts a fresh gpuq (`manage.py gpuq_serve`, SQLite in a temporary folder, the node reading NVML once
a second) and checks, printing each result:

1. NVML, read directly: every GPU has its UUID, model, memory and readings.
2. The node registers those GPUs (backend nvml), the same UUIDs and memory.
3. A job given one GPU sees only that GPU (CUDA_VISIBLE_DEVICES), takes 4 GiB on it, and the node's
   readings show the memory in use; its own process does not make the GPU "busy".
4. Cancelling it frees the GPU: the memory in use falls back and the GPU is given out again.
5. A job runs to its end with exit code 0 and its log.
6. A process that is not a gpuq job, taking memory on every GPU, makes them busy: a job waits, and runs
   once that process has gone.

Exit status 0 when every check passed, 1 otherwise. Nothing here runs in CI (it has no GPU).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOLD_MB = 4096
ENDED = ("completed", "failed", "cancelled", "rejected")
RESULTS: list[tuple[str, bool, str]] = []


def check(name: str, ok: bool, detail: str = "") -> bool:
    RESULTS.append((name, ok, detail))
    print(f"{'PASS' if ok else 'FAIL'} {name}{': ' + detail if detail else ''}", flush=True)
    return ok


def wait(predicate, timeout: float, what: str):
    """Poll `predicate` until it returns something truthy; that value, or None after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)
    print(f"  (gave up waiting for {what} after {timeout:.0f} s)", flush=True)
    return None


def gpu_program(megabytes: int, hold_seconds: float) -> str:
    """A Python program that takes `megabytes` on each GPU it sees, says so, and holds it."""
    return textwrap.dedent(
        f"""
        import os, sys, time
        print("CUDA_VISIBLE_DEVICES=" + os.environ.get("CUDA_VISIBLE_DEVICES", "<unset>"), flush=True)
        import torch
        count = torch.cuda.device_count()
        held = [torch.empty({megabytes} << 20, dtype=torch.uint8, device=f"cuda:{{i}}") for i in range(count)]
        torch.cuda.synchronize()
        print(f"devices={{count}} pid={{os.getpid()}} allocated", flush=True)
        time.sleep({hold_seconds})
        print("done", flush=True)
        """
    )


class Gpuq:
    def __init__(self, port: int):
        self.data = tempfile.mkdtemp(prefix="gpuq-gpu-check-")
        os.chmod(self.data, 0o711)
        self.base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "GPUQ_DATA_DIR": self.data,
            "GPUQ_INVENTORY": "nvml",
            "GPUQ_INVENTORY_REFRESH_SECONDS": "1",
            "GPUQ_LOG_LEVEL": "WARNING",
        }
        env.pop("DATABASE_URL", None)
        self.log = open(Path(self.data) / "serve.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "manage.py", "gpuq_serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        token = Path(self.data) / "admin-token"
        if not wait(lambda: token.exists() and self._answers(), 180, "gpuq to answer"):
            self.stop()
            raise SystemExit("gpuq did not start:\n" + (Path(self.data) / "serve.log").read_text()[-4000:])
        self.http = httpx.Client(
            base_url=self.base, headers={"Authorization": f"Token {token.read_text().strip()}"}, timeout=30
        )

    def _answers(self) -> bool:
        try:
            return httpx.get(self.base + "/accounts/login/", timeout=5).status_code == 200
        except httpx.HTTPError:
            return False

    def get(self, path: str):
        response = self.http.get(path)
        response.raise_for_status()
        return response.json()

    def submit(self, argv: list[str], **body) -> int:
        body = {"argv": argv, "gpu_count": 1, "env": self.job_env(), **body}
        response = self.http.post("/api/v1/jobs", json=body)
        if response.status_code != 201:
            raise SystemExit(f"submit failed: {response.status_code} {response.text}")
        return response.json()["id"]

    @staticmethod
    def job_env() -> dict[str, str]:
        """The driver's libraries may be found through LD_LIBRARY_PATH only, which a job does not inherit."""
        return {name: os.environ[name] for name in ("LD_LIBRARY_PATH",) if name in os.environ}

    def job(self, job_id: int) -> dict:
        return self.get(f"/api/v1/jobs/{job_id}")

    def log_text(self, job_id: int) -> str:
        return self.http.get(f"/api/v1/jobs/{job_id}/log/download").text

    def node(self) -> dict:
        return self.get("/api/v1/nodes")["nodes"][0]

    def gpus(self) -> list[dict]:
        return self.node()["gpus"]

    def stop(self) -> None:
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(60)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.process.pid, signal.SIGKILL)


def fresh_readings(gpuq: Gpuq, after: float, timeout: float = 30) -> list[dict] | None:
    """The node's GPU readings once all were taken after the epoch time `after`."""
    from datetime import datetime

    def taken():
        gpus = gpuq.gpus()
        stamps = [g["readings_at"] for g in gpus]
        if all(s and datetime.fromisoformat(s).timestamp() > after for s in stamps):
            return gpus
        return None

    return wait(taken, timeout, "fresh GPU readings")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--job-python", default=sys.executable, help="a Python with PyTorch, for the jobs")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "queueproject.settings")

    # 1. NVML, directly.
    from gpus.nvml import read_gpus

    direct = read_gpus()
    if not check("NVML answers", bool(direct), f"{len(direct or [])} GPU(s)"):
        return 1
    for info in direct:
        print(f"  {info}", flush=True)
    check(
        "every GPU has a UUID, a model, memory and readings",
        all(
            not i.error
            and i.uuid.startswith("GPU-")
            and i.model_name
            and i.memory_mb > 0
            and i.memory_used_mb is not None
            and i.temperature_c is not None
            for i in direct
        ),
    )

    gpuq = Gpuq(args.port)
    foreign = None
    try:
        # 2. The node's inventory.
        node = gpuq.node()
        registered = {(g["uuid"], g["memory_mb"], g["name"]) for g in node["gpus"]}
        check(
            "the node registers NVML's GPUs",
            node["backend"] == "nvml" and registered == {(i.uuid, i.memory_mb, i.model_name) for i in direct},
            json.dumps(node["gpus"][0]),
        )
        baseline = {g["index"]: g["memory_used_mb"] or 0 for g in node["gpus"]}

        # 3. One GPU for a job, and the readings show its memory.
        held = gpuq.submit([args.job_python, "-c", gpu_program(HOLD_MB, 600)], name="hold-4gib")
        log = wait(
            lambda: (
                ("allocated" in (text := gpuq.log_text(held)) and text)
                or (gpuq.job(held)["status"] in ENDED and "(ended)")
            ),
            180,
            "the job to take memory",
        )
        log = None if log == "(ended)" else log
        job = gpuq.job(held)
        check(
            "a job given one GPU runs and takes memory on it",
            bool(log),
            f"status {job['status']}, log {log!r}",
        )
        if log:
            index = job["gpu_indices"][0]
            uuid = next(g["uuid"] for g in node["gpus"] if g["index"] == index)
            visible = log.split("CUDA_VISIBLE_DEVICES=", 1)[1].split()[0]
            check(
                "it sees only its GPU",
                "devices=1" in log and visible in (str(index), uuid),
                f"CUDA_VISIBLE_DEVICES={visible}, GPU {index} {uuid}",
            )
            readings = fresh_readings(gpuq, time.time())
            mine = next(g for g in readings or [] if g["index"] == index) if readings else None
            check(
                "the node's readings show the job's memory",
                bool(mine) and (mine["memory_used_mb"] or 0) - baseline[index] >= HOLD_MB * 0.9,
                json.dumps(mine),
            )
            check(
                "the job's own process does not make its GPU busy",
                bool(mine) and not mine["busy"],
                f"foreign_pids {mine and mine['foreign_pids']}",
            )
            series = {
                s["name"]: [p["value"] for p in s["points"]]
                for s in gpuq.get(f"/api/v1/jobs/{held}/metrics")["series"]
            }
            memory = series.get(f"gpu{index}.memory_used_mb", [])
            check(
                "the job's charts show its memory",
                bool(memory) and max(memory) - baseline[index] >= HOLD_MB * 0.9,
                f"gpu{index}.memory_used_mb: {memory}",
            )

        # 4. Cancelling frees the GPU.
        gpuq.http.post(f"/api/v1/jobs/{held}/cancel", json={"reason": "gpu check"})
        wait(lambda: gpuq.job(held)["status"] in ENDED, 120, "the cancel")
        check("the job is cancelled", gpuq.job(held)["status"] == "cancelled", gpuq.job(held)["status"])
        if log:
            freed = wait(
                lambda: (
                    (
                        (g := next(x for x in gpuq.gpus() if x["index"] == index))["memory_used_mb"]
                        is not None
                        and g["memory_used_mb"] - baseline[index] < HOLD_MB * 0.5
                    )
                    and g
                ),
                60,
                "the memory to be freed",
            )
            check("cancelling frees the GPU's memory", bool(freed), json.dumps(freed))

        # 5. A job to its end.
        short = gpuq.submit([args.job_python, "-c", gpu_program(256, 1)], name="short")
        done = wait(lambda: (j := gpuq.job(short))["status"] in ENDED and j, 180, "the end")
        text = gpuq.log_text(short)
        check(
            "a GPU job runs to its end",
            bool(done) and done["status"] == "completed" and done["exit_code"] == 0 and "done" in text,
            f"{done and (done['status'], done['exit_code'], done['error'])} log {text[-300:]!r}",
        )

        # 6. A process outside gpuq makes the GPUs busy; a job waits until it has gone.
        started = time.time()
        foreign = subprocess.Popen(
            [args.job_python, "-c", gpu_program(1024, 600)],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, **gpuq.job_env()},
        )
        line = ""
        while "allocated" not in line and foreign.poll() is None:
            line = foreign.stdout.readline()
        busy = wait(
            lambda: (gpus := fresh_readings(gpuq, started + 1)) and all(g["busy"] for g in gpus) and gpus,
            60,
            "the GPUs to be busy",
        )
        check(
            "a process outside gpuq makes the GPUs busy",
            bool(busy),
            f"pid {foreign.pid}, {json.dumps([(g['index'], g['foreign_pids']) for g in gpuq.gpus()])}",
        )
        waiting = gpuq.submit([args.job_python, "-c", gpu_program(256, 1)], name="after-foreign")
        if busy:
            time.sleep(3)  # several ticks and readings: it must still wait
            job = gpuq.job(waiting)
            check(
                "a job waits while they are busy",
                job["status"] == "pending",
                f"{job['status']} {job['wait_reason']} {job['wait_detail']}",
            )
        foreign.terminate()
        foreign.wait(60)
        foreign = None
        done = wait(lambda: (j := gpuq.job(waiting))["status"] in ENDED and j, 180, "it to run")
        check(
            "and runs once the process has gone",
            bool(done) and done["status"] == "completed",
            f"{done and (done['status'], done['exit_code'])}",
        )
    finally:
        if foreign is not None:
            foreign.kill()
        gpuq.stop()
        print(f"gpuq's own log: {gpuq.data}/serve.log", flush=True)

    failed = [name for name, ok, _ in RESULTS if not ok]
    print(
        f"{len(RESULTS) - len(failed)} of {len(RESULTS)} checks passed"
        + (f"; failed: {failed}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
