"""Run this machine's node: register its GPUs, reconcile, run its executor cluster, tick and reap, and
read its GPUs again every GPUQ_INVENTORY_REFRESH_SECONDS."""

import logging
import time

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError, close_old_connections, connection

from gpus import inventory
from gpus.services import (
    node_go_offline,
    node_heartbeat,
    node_refresh_inventory,
    node_register,
    nodes_mark_offline,
)
from notifications import sending as notifications
from queueproject.hardening import tighten_data_modes
from scheduling import housekeeping, leases, procs, reclaim, retention, runas, supervise, ticker
from scheduling.outage import Outage, drop_connection
from scheduling.reaper import reap, reconcile_node
from scheduling.taskqueue import prune_finished_tasks

log = logging.getLogger("gpuq.node")

ORPHAN_SWEEP_SECONDS = 3600  # how often a node removes the folders of jobs removed elsewhere


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
        # The loop keeps its database connection between periods (close_old_connections below then
        # closes it only when it failed its health check; errors also drop it): an idle node opens none.
        connection.settings_dict["CONN_MAX_AGE"] = None
        try:
            leases.check(
                heartbeat=settings.GPUQ_HEARTBEAT_SECONDS,
                lease=settings.GPUQ_LEASE_SECONDS,
                grace=settings.GPUQ_KILL_GRACE_SECONDS,
                margin=settings.GPUQ_LEASE_MARGIN_SECONDS,
            )
        except leases.OverlapError as error:
            raise CommandError(str(error)) from None
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
        # The daily retention run goes to one online node's cluster: this one, unless another holds it.
        housekeeping.ensure_schedule(cluster=node.queue_name)
        flag = supervise.StopFlag()
        cluster_env = {"Q_CLUSTER_NAME": node.queue_name, "GPUQ_EXECUTOR_WORKERS": str(max(1, len(gpus)))}
        cluster = supervise.manage_py("qcluster", env=cluster_env)
        # The notifications' own small cluster, started the first time there is something to send (its
        # workers must not be the executors', which stay busy for as long as their jobs run).
        notify_env = {
            "Q_CLUSTER_NAME": settings.GPUQ_NOTIFY_QUEUE,
            "GPUQ_EXECUTOR_WORKERS": str(settings.GPUQ_NOTIFY_WORKERS),
        }
        notify_cluster = None
        next_refresh = time.monotonic() + settings.GPUQ_INVENTORY_REFRESH_SECONDS
        next_sweep = time.monotonic() + ORPHAN_SWEEP_SECONDS
        outage = Outage(f"node {name}", log)
        quiet_until = 0.0
        try:
            while not flag.stopping:
                delay = settings.GPUQ_TICK_SECONDS
                try:
                    if time.monotonic() >= next_refresh:
                        next_refresh = time.monotonic() + settings.GPUQ_INVENTORY_REFRESH_SECONDS
                        try:
                            node_refresh_inventory(node=node)
                            reclaim.idle_check(node=node)  # on the readings just taken
                        except DatabaseError:
                            raise
                        except Exception:
                            log.exception(
                                "node %s: inventory refresh or idle check failed; retrying next period", name
                            )
                    node_heartbeat(node=node)
                    if time.monotonic() >= next_sweep:
                        next_sweep = time.monotonic() + ORPHAN_SWEEP_SECONDS
                        try:
                            retention.orphan_files_sweep()
                        except DatabaseError:
                            raise
                        except Exception:
                            log.exception("node %s: removing old jobs' folders failed; retrying later", name)
                    if outage.recovered():
                        # Everyone's heartbeats stopped with the database: give executors a whole
                        # take-over time to heartbeat again and to record the outcomes they kept before
                        # judging anyone's lease or node.
                        quiet_until = time.monotonic() + leases.current().reap_after
                    if time.monotonic() >= quiet_until:
                        nodes_mark_offline()
                        reap(node_name=name)
                    prune_finished_tasks()
                    ticker.run_periodic()  # the safety tick, unless another ticker is at it
                    try:
                        # After the tick: database work only (events become deliveries); sending is
                        # the notification cluster's.
                        if notifications.kick() and notify_cluster is None:
                            notify_cluster = supervise.manage_py("qcluster", env=notify_env)
                    except DatabaseError:
                        raise
                    except Exception:
                        log.exception("node %s: notifications failed; retrying next period", name)
                except DatabaseError as error:
                    delay = min(delay, outage.failed(error))
                    drop_connection()
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
                if notify_cluster is not None and notify_cluster.poll() is not None:
                    log.error("node %s: notification cluster exited (%s)", name, notify_cluster.returncode)
                    notify_cluster = None  # started again by the next kick
                flag.sleep(delay)
        finally:
            # Leave the pool first, so that no tick places a job here while we stop.
            try:
                node_go_offline(node=node)
            except DatabaseError as error:
                log.warning("node %s: could not go offline (%s)", name, error)
            # django-q2 waits without limit for running tasks on SIGINT/SIGTERM: bound it ourselves.
            supervise.stop([c for c in (cluster, notify_cluster) if c is not None], grace=5.0)
            # The executors are gone with their jobs (their children die with them): requeue now.
            try:
                reconcile_node(name, executors_gone=True)
            except DatabaseError as error:
                log.warning("node %s: its jobs are left to the reaper (%s)", name, error)
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
