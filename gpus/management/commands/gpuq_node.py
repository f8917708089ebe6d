"""Run this machine's node: register its GPUs, reconcile, run its executor cluster, tick and reap, and
read its GPUs again every GPUQ_INVENTORY_REFRESH_SECONDS."""

import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from gpus import inventory
from gpus.services import (
    node_go_offline,
    node_heartbeat,
    node_refresh_inventory,
    node_register,
    nodes_mark_offline,
)
from queueproject.hardening import tighten_data_modes
from scheduling import procs, runas, supervise
from scheduling.reaper import reap, reconcile_node
from scheduling.taskqueue import prune_finished_tasks
from scheduling.tick import tick

log = logging.getLogger("gpuq.node")


def parse_labels(text: str) -> dict:
    labels = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CommandError(f"--labels: {item!r} is not KEY=VALUE")
        labels[key.strip()] = value.strip()
    return labels


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--name", default=None, help="node name (default: GPUQ_NODE_NAME, the host name)")
        parser.add_argument("--labels", default="", help="KEY=VALUE,… labels jobs can ask for")

    def handle(self, *args, name=None, labels="", **options):
        name = name or settings.GPUQ_NODE_NAME
        tighten_data_modes()
        self._check_run_as(name)
        backend, gpus = inventory.detect(node_name=name)
        node = node_register(
            name=name,
            backend=backend,
            gpus=gpus,
            labels=parse_labels(labels),
            boot_id=procs.boot_id(),
            local=settings.GPUQ_NODE_LOCAL,
        )
        simulated = " (simulated)" if backend == "declared" else ""
        self.stdout.write(f"node {name}: {len(gpus)} GPU(s) from {backend}{simulated}", ending="\n")
        self.stdout.write(f"node {name}: {runas.describe()}", ending="\n")
        self.stdout.flush()
        reconcile_node(name)
        flag = supervise.StopFlag()
        cluster_env = {"Q_CLUSTER_NAME": node.queue_name, "GPUQ_EXECUTOR_WORKERS": str(max(1, len(gpus)))}
        cluster = supervise.manage_py("qcluster", env=cluster_env)
        next_refresh = time.monotonic() + settings.GPUQ_INVENTORY_REFRESH_SECONDS
        try:
            while not flag.stopping:
                if time.monotonic() >= next_refresh:
                    next_refresh = time.monotonic() + settings.GPUQ_INVENTORY_REFRESH_SECONDS
                    try:
                        node_refresh_inventory(node=node)
                    except Exception:
                        log.exception("node %s: inventory refresh failed; retrying next period", name)
                    finally:
                        close_old_connections()
                try:
                    node_heartbeat(node=node)
                    nodes_mark_offline()
                    reap()
                    prune_finished_tasks()
                    tick()
                except Exception:
                    log.exception("node %s: periodic step failed; retrying next period", name)
                finally:
                    close_old_connections()
                if cluster.poll() is not None:
                    log.error(
                        "node %s: executor cluster exited (%s); restarting it", name, cluster.returncode
                    )
                    reconcile_node(name)
                    cluster = supervise.manage_py("qcluster", env=cluster_env)
                flag.sleep(settings.GPUQ_TICK_SECONDS)
        finally:
            # Leave the pool first, so that no tick places a job here while we stop.
            node_go_offline(node=node)
            # django-q2 waits without limit for running tasks on SIGINT/SIGTERM: bound it ourselves.
            supervise.stop([cluster], grace=5.0)
            # The executors are gone with their jobs (their children die with them): requeue now.
            reconcile_node(name, executors_gone=True)
        self.stdout.write(f"node {name}: stopped")

    def _check_run_as(self, name: str) -> None:
        """Refuse to start when the jobs' account is impossible or cannot reach its folders: better now,
        loudly, than every job failing later."""
        runas.prepare_roots()
        try:
            account = runas.fixed_account()
            if account is not None:
                for root in (settings.GPUQ_JOBS_DIR, settings.GPUQ_CHECKPOINT_ROOT):
                    runas.check_reachable(root, account)
        except runas.RunAsError as error:
            raise CommandError(f"node {name}: {error}") from None
