"""Prometheus metrics at /metrics: read from the database at each scrape by one custom collector (so any
number of web processes give the same answers), behind a bearer token or an address allow-list.

Every value is a gauge read now, in a fixed number of aggregate queries (none per job): jobs by status and
by wait reason, running jobs, GPUs and quota GPU-seconds by user and team, each GPU's allocation and
readings, each node's heartbeat, the newest event; the two latency histograms are built from the jobs
started in the last 24 hours (a window, not counters since start: read them with histogram_quantile
directly, never through rate())."""

import hmac
import ipaddress
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count
from django.http import HttpResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from accounts.models import Team
from accounts.throttling import client_address
from gpus.models import Allocation, Gpu, Node, NodeStatus
from notifications import metrics as notifications
from scheduling import durations, policies, usage
from scheduling.models import (
    Event,
    GpuQuota,
    IdleWatch,
    Job,
    JobStateTransition,
    PolicyType,
    RelayReport,
    StopRequest,
    TickState,
)
from scheduling.relay import REPORTS_KEPT
from scheduling.states import HOLDS_GPUS, WAITING, Status

# The classic text format every Prometheus reads (prometheus-client's newest default says version=1.0.0).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
MIB = 1024 * 1024  # the inventory's "MB" are mebibytes (NVML bytes // 2**20)
LATENCY_WINDOW = timedelta(hours=24)
# Upper bounds of the latency histograms' buckets, in seconds (+Inf is added).
BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 14400, 43200, 86400)


def _gauge(name: str, doc: str, labels: list[str], rows: Iterable[tuple[tuple, float]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for values, value in rows:
        family.add_metric([str(v) for v in values], float(value))
    return family


def histogram(name: str, doc: str, values: Iterable[float]) -> HistogramMetricFamily:
    """A histogram family over `values` with BUCKETS (cumulative counts, +Inf, sum)."""
    counts = [0] * (len(BUCKETS) + 1)
    total = 0.0
    for value in values:
        counts[bisect_left(BUCKETS, value)] += 1
        total += value
    return histogram_of_counts(name, doc, BUCKETS, counts, total)


def histogram_of_counts(
    name: str, doc: str, bounds: tuple, counts: list[int], total: float
) -> HistogramMetricFamily:
    """A histogram family from per-bucket counts (`bounds` then +Inf, not cumulative) and their sum."""
    cumulative, buckets = 0, []
    for bound, count in zip((*map(floatToGoString, bounds), "+Inf"), counts, strict=True):
        cumulative += count
        buckets.append((bound, cumulative))
    return HistogramMetricFamily(name, doc, buckets=buckets, sum_value=total)


class GpuqCollector:
    """prometheus_client's custom collector protocol: `collect()` yields metric families."""

    def __init__(self, now: datetime | None = None):
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now = self.now or timezone.now()
        configs = policies.enabled_configs()
        yield from self._jobs(configs)
        yield from self._usage(now, configs)
        yield from self._gpus()
        yield from self._nodes(now)
        yield from self._latency(now)
        yield from self._events(now)
        yield from self._ticks()
        yield from self._idle(now)
        yield from notifications.collect()

    def _jobs(self, configs: dict) -> Iterator[Metric]:
        by_status = dict(Job.objects.order_by().values_list("status").annotate(n=Count("id")))
        yield _gauge(
            "gpuq_jobs",
            "Jobs by status (terminal ones included, until retention removes them).",
            ["status"],
            (((s,), by_status.get(s, 0)) for s in Status.values),
        )
        waiting = (
            Job.objects.filter(status__in=WAITING)
            .order_by()
            .values_list("status", "wait_reason")
            .annotate(n=Count("id"))
        )
        yield _gauge(
            "gpuq_jobs_waiting",
            "Waiting jobs (pending, scheduled, blocked, paused) by status and wait reason ('none': no reason yet).",
            ["status", "reason"],
            (((status, reason or "none"), n) for status, reason, n in waiting),
        )
        yield _gauge(
            "gpuq_queue_paused",
            "1 while the queue is paused (no new starts).",
            [],
            [((), PolicyType.QUEUE_PAUSE in configs)],
        )
        users: dict[str, int] = defaultdict(int)
        teams: dict[str, int] = defaultdict(int)
        running = (
            Job.objects.filter(status__in=HOLDS_GPUS)
            .order_by()
            .values_list("owner__username", "team__name")
            .annotate(n=Count("id"))
        )
        for user, team, n in running:
            users[user] += n
            if team is not None:
                teams[team] += n
        yield _gauge(
            "gpuq_user_running_jobs",
            "Dispatched and running jobs by owner.",
            ["user"],
            (((u,), n) for u, n in users.items()),
        )
        yield _gauge(
            "gpuq_team_running_jobs",
            "Dispatched and running jobs by team.",
            ["team"],
            (((t,), n) for t, n in teams.items()),
        )

    def _usage(self, now: datetime, configs: dict) -> Iterator[Metric]:
        """GPU-seconds today and this week as the quotas count them (scheduling.usage), and the limits."""
        tz = configs.get(PolicyType.QUOTA, policies.DEFAULTS[PolicyType.QUOTA])["timezone"]
        used = usage.quota_usage(now, tz)
        user_ids = set(used.user_week) | set(used.user_day)
        team_ids = set(used.team_week) | set(used.team_day)
        quotas = list(GpuQuota.objects.select_related("user", "team"))
        user_ids |= {q.user_id for q in quotas if q.user_id}
        team_ids |= {q.team_id for q in quotas if q.team_id}
        usernames = dict(get_user_model().objects.filter(pk__in=user_ids).values_list("pk", "username"))
        teamnames = dict(Team.objects.filter(pk__in=team_ids).values_list("pk", "name"))
        windows = (("day", used.user_day, used.team_day), ("week", used.user_week, used.team_week))
        yield _gauge(
            "gpuq_user_gpu_seconds",
            f"GPU-seconds used by each user in the current quota day and week ({tz}), running jobs included.",
            ["user", "window"],
            (
                ((usernames[u], w), s)
                for w, by_user, _ in windows
                for u, s in by_user.items()
                if u in usernames
            ),
        )
        yield _gauge(
            "gpuq_team_gpu_seconds",
            f"GPU-seconds used by each team in the current quota day and week ({tz}), running jobs included.",
            ["team", "window"],
            (
                ((teamnames[t], w), s)
                for w, _, by_team in windows
                for t, s in by_team.items()
                if t in teamnames
            ),
        )
        limits = [
            (("user", q.user.username) if q.user_id else ("team", q.team.name), window, limit)
            for q in quotas
            for window, limit in (("day", q.daily_gpu_seconds), ("week", q.weekly_gpu_seconds))
            if limit is not None
        ]
        for kind in ("user", "team"):
            yield _gauge(
                f"gpuq_{kind}_gpu_seconds_limit",
                f"The {kind}'s GPU-second quota per day and per week (absent: no limit).",
                [kind, "window"],
                (((name, window), limit) for (k, name), window, limit in limits if k == kind),
            )

    def _gpus(self) -> Iterator[Metric]:
        holders = {
            gpu: (job, owner, team)
            for gpu, job, owner, team in Allocation.objects.active().values_list(
                "gpu_id", "job_id", "job__owner__username", "job__team__name"
            )
        }
        gpus = list(Gpu.objects.select_related("node").order_by("node__name", "index"))
        where = ["node", "index"]
        allocated = GaugeMetricFamily(
            "gpuq_gpu_allocated",
            "1 while a job holds the GPU (its id and owner in the labels), else 0.",
            labels=[*where, "job", "user"],
        )
        info = GaugeMetricFamily(
            "gpuq_gpu_info",
            "Each GPU's model, UUID and whether it is simulated (always 1).",
            labels=[*where, "model", "uuid", "simulated"],
        )
        families = {
            "total": GaugeMetricFamily("gpuq_gpu_memory_total_bytes", "The GPU's memory.", labels=where),
            "used": GaugeMetricFamily(
                "gpuq_gpu_memory_used_bytes", "Memory in use, at the latest reading.", labels=where
            ),
            "util": GaugeMetricFamily(
                "gpuq_gpu_utilization_percent", "Utilization at the latest reading (0-100).", labels=where
            ),
            "temp": GaugeMetricFamily(
                "gpuq_gpu_temperature_celsius", "Temperature at the latest reading.", labels=where
            ),
            "healthy": GaugeMetricFamily(
                "gpuq_gpu_healthy",
                "1 while the GPU may be given out (reported well, not taken out).",
                labels=where,
            ),
            "busy": GaugeMetricFamily(
                "gpuq_gpu_busy_foreign",
                "1 while a process that is not a gpuq job uses the GPU.",
                labels=where,
            ),
        }
        users: dict[str, int] = defaultdict(int)
        teams: dict[str, int] = defaultdict(int)
        for gpu in gpus:
            at = [gpu.node.name, str(gpu.index)]
            job, owner, team = holders.get(gpu.pk, (None, None, None))
            allocated.add_metric([*at, str(job or ""), owner or ""], 1 if job else 0)
            if job:
                users[owner] += 1
                if team is not None:
                    teams[team] += 1
            info.add_metric([*at, gpu.model_name, gpu.uuid, str(gpu.simulated).lower()], 1)
            families["total"].add_metric(at, gpu.memory_mb * MIB)
            if gpu.memory_used_mb is not None:
                families["used"].add_metric(at, gpu.memory_used_mb * MIB)
            if gpu.utilization_percent is not None:
                families["util"].add_metric(at, gpu.utilization_percent)
            if gpu.temperature_c is not None:
                families["temp"].add_metric(at, gpu.temperature_c)
            families["healthy"].add_metric(at, 1 if gpu.healthy else 0)
            families["busy"].add_metric(at, 1 if gpu.busy_foreign else 0)
        yield allocated
        yield info
        yield from families.values()
        yield _gauge(
            "gpuq_user_allocated_gpus",
            "GPUs held by each user's jobs.",
            ["user"],
            (((u,), n) for u, n in users.items()),
        )
        yield _gauge(
            "gpuq_team_allocated_gpus",
            "GPUs held by each team's jobs.",
            ["team"],
            (((t,), n) for t, n in teams.items()),
        )

    def _nodes(self, now: datetime) -> Iterator[Metric]:
        nodes = list(Node.objects.order_by("name"))
        yield _gauge(
            "gpuq_node_up",
            "1 while the node is online (heartbeating).",
            ["node"],
            (((n.name,), n.status == NodeStatus.ONLINE) for n in nodes),
        )
        yield _gauge(
            "gpuq_node_drained",
            "1 while the node takes no new jobs.",
            ["node"],
            (((n.name,), n.drained) for n in nodes),
        )
        yield _gauge(
            "gpuq_node_heartbeat_age_seconds",
            "Seconds since the node's last heartbeat (its own clock against the web server's).",
            ["node"],
            (((n.name,), (now - n.heartbeat_at).total_seconds()) for n in nodes if n.heartbeat_at),
        )

    def _latency(self, now: datetime) -> Iterator[Metric]:
        since = now - LATENCY_WINDOW
        started = Job.objects.filter(started_at__gte=since).values_list("submitted_at", "started_at")
        yield histogram(
            "gpuq_job_submit_to_running_seconds",
            "From submission to running, for the jobs started in the last 24 h (their latest start).",
            ((start - submitted).total_seconds() for submitted, start in started.iterator(chunk_size=2000)),
        )
        yield histogram(
            "gpuq_job_wait_seconds",
            "Time in the queue (pending) before the latest dispatch, for the jobs started in the last 24 h.",
            _waits(since),
        )

    def _events(self, now: datetime) -> Iterator[Metric]:
        newest = Event.objects.order_by("-id").values_list("id", "at").first()
        yield _gauge(
            "gpuq_events_last_id",
            "Id of the newest event (the live pages' stream).",
            [],
            [((), newest[0] if newest else 0)],
        )
        if newest:
            yield _gauge(
                "gpuq_events_newest_age_seconds",
                "Seconds since the newest event was written (how long the stream has been quiet).",
                [],
                [((), (now - newest[1]).total_seconds())],
            )
        reports = list(
            RelayReport.objects.filter(reported_at__gte=now - REPORTS_KEPT)
            .order_by("relay")
            .values_list("relay", "lag_seconds", "reported_at")
        )
        yield _gauge(
            "gpuq_event_relay_lag_seconds",
            "Each web process's live relay: the longest time from an event being written to its relay handing "
            "it to clients, over the relay's latest report period (GPUQ_RELAY_REPORT_SECONDS).",
            ["relay"],
            (((name,), lag) for name, lag, _ in reports),
        )
        yield _gauge(
            "gpuq_event_relay_report_age_seconds",
            "Seconds since each relay last reported (it reports only while events flow).",
            ["relay"],
            (((name,), (now - at).total_seconds()) for name, _, at in reports),
        )

    def _ticks(self) -> Iterator[Metric]:
        """How long ticks and plans took, as the ticker counted them in TickState (since the database
        began: read them with rate() like any histogram)."""
        recorded = TickState.objects.filter(pk=1).values_list("durations", flat=True).first() or {}
        for name, what in (("tick", "A whole tick (snapshot, plan, apply, store)"), ("plan", "The planner")):
            counts = recorded.get(name, {})
            yield histogram_of_counts(
                f"gpuq_{name}_duration_seconds",
                f"{what}: seconds per tick, every tick since the database began.",
                durations.BUCKETS,
                counts.get("buckets") or [0] * (len(durations.BUCKETS) + 1),
                counts.get("sum", 0.0),
            )
            yield _gauge(
                f"gpuq_{name}_last_duration_seconds",
                f"{what}: seconds the latest tick took.",
                [],
                [((), counts.get("last", 0.0))],
            )

    def _idle(self, now: datetime) -> Iterator[Metric]:
        """Idle-GPU reclaim (scheduling.reclaim): running jobs whose GPUs read idle, and the jobs it stopped."""
        watched = list(
            IdleWatch.objects.filter(job__status=Status.RUNNING).values_list(
                "job_id", "job__owner__username", "idle_since", "gpus", "warned_at", "acted_at"
            )
        )
        states: dict[str, tuple[int, int]] = {"idle": (0, 0), "warned": (0, 0), "acted": (0, 0)}
        for _, _, _, gpus, warned_at, acted_at in watched:
            state = "acted" if acted_at else "warned" if warned_at else "idle"
            jobs, held = states[state]
            states[state] = (jobs + 1, held + gpus)
        yield _gauge(
            "gpuq_idle_jobs",
            "Running jobs whose GPUs read idle, by state: idle (not warned yet), warned, acted (stop asked "
            "or reported).",
            ["state"],
            (((state,), jobs) for state, (jobs, _) in states.items()),
        )
        yield _gauge(
            "gpuq_idle_gpus",
            "GPUs held by running jobs that read idle, by the same states.",
            ["state"],
            (((state,), held) for state, (_, held) in states.items()),
        )
        yield _gauge(
            "gpuq_job_idle_seconds",
            "Seconds each idle running job's GPUs have read idle (its id and owner in the labels).",
            ["job", "user"],
            (((job, user), (now - since).total_seconds()) for job, user, since, *_ in watched),
        )
        stopped = Job.objects.filter(status=Status.CANCELLED, stop_request=StopRequest.IDLE).count()
        yield _gauge(
            "gpuq_jobs_idle_stopped",
            "Jobs that idle-GPU reclaim stopped (ended cancelled for idle), until retention removes them.",
            [],
            [((), stopped)],
        )


def _waits(since: datetime) -> Iterator[float]:
    """For each job started since `since`: the time between its last entry into `pending` and its latest
    dispatch (a job is dispatched only from `pending`, so that entry is the transition just before)."""
    rows = (
        JobStateTransition.objects.filter(
            job__started_at__gte=since, to_status__in=(Status.PENDING, Status.DISPATCHED)
        )
        .order_by("job_id", "id")
        .values_list("job_id", "to_status", "at")
    )
    job, pending_since, wait = None, None, None
    for job_id, to_status, at in rows.iterator(chunk_size=2000):
        if job_id != job:
            if wait is not None:
                yield wait
            job, pending_since, wait = job_id, None, None
        if to_status == Status.PENDING:
            pending_since = at
        elif pending_since is not None:
            wait = (at - pending_since).total_seconds()
    if wait is not None:
        yield wait


def scrape(now: datetime | None = None) -> bytes:
    """The metrics in Prometheus' text format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GpuqCollector(now))
    return generate_latest(registry)


def refusal(request) -> str | None:
    """Why this request may not read the metrics, or None. A request with `Authorization` is judged by its
    token alone (a wrong token is refused, wherever it comes from); one without, by its address."""
    token = settings.GPUQ_METRICS_TOKEN
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, sent = header.partition(" ")
        if not token:
            return "Authorization: no GPUQ_METRICS_TOKEN is set; scrape from an address in GPUQ_METRICS_ALLOW"
        if scheme.lower() != "bearer" or not hmac.compare_digest(sent.strip().encode(), token.encode()):
            return "Authorization: wrong token; send Authorization: Bearer <GPUQ_METRICS_TOKEN>"
        return None
    address = client_address(request)
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        ip = None
    if ip is not None and ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    if ip is not None and any(ip in network for network in settings.GPUQ_METRICS_ALLOW):
        return None
    return f"address {address} is not in GPUQ_METRICS_ALLOW; send Authorization: Bearer <GPUQ_METRICS_TOKEN>"


@never_cache
@require_GET
def metrics_view(request):
    if reason := refusal(request):
        return HttpResponse(
            f"403 Forbidden: {reason}\n", status=403, content_type="text/plain; charset=utf-8"
        )
    return HttpResponse(scrape(), content_type=CONTENT_TYPE)
