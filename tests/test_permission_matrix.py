"""The permission matrix: every API endpoint, page, key admin URL and the websocket, for each kind of
user, with the HTTP status each must get (and, for replies that carry a job, whether `env` is in it).

One row is one line of ROWS: method, path, body, then the expected cell for each column of COLUMNS.
A cell is a status code; `+` after it means the reply shows the job's `env` (every other 2xx reply
must not). Paths and bodies name the world's rows in braces: {job} (alice's pending job, priority 10, the
one job of her {sweep}),
{blocked} (awaiting approval), {paused}, {policy}, {owner} (alice's user id). Each row builds the world
once and runs each column inside a savepoint that is rolled back, so every cell starts from the same
state. `WS` rows open the live websocket: 101 accepted, `closed` refused.

The people: alice owns the jobs (researcher, team vision); tom is her teammate; olga a researcher of
team nlp; lena leads vision and nick leads nlp (both staff, so the admin rows show what staff leads
see); victor is a viewer (vision, staff); root is the admin; sam is staff with no gpuq level at all.
"""

import json

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.db import transaction
from django.urls import URLPattern, URLResolver, resolve
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import ApiToken, Level, Profile, Team
from gpus.inventory import parse_declared
from gpus.services import node_register
from scheduling.models import Job, JobTemplate, PolicyType, SchedulingPolicy, Sweep
from scheduling.states import Status
from tests.conftest import make_user

COLUMNS = ("anonymous", "owner", "teammate", "other", "lead", "other_lead", "viewer", "admin", "staff")

# fmt: off
ROWS = [
    # The REST API (scheduling/api/urls.py).                      anon owner mate other lead olead view admin staff
    ("GET", "/api/v1/jobs", None,                                 "401 200+ 200 200 200 200 200 200+ 200"),
    ("POST", "/api/v1/jobs", {"template": "hello"},               "401 201+ 201+ 201+ 201+ 201+ 403 201+ 201+"),
    ("POST", "/api/v1/jobs", [{"template": "hello"}] * 2,         "401 201 201 201 201 201 403 201 201"),
    ("POST", "/api/v1/jobs", {"template": "hello", "sweep": {"sets": [{}, {}]}}, "401 201 201 201 201 201 403 201 201"),
    ("GET", "/api/v1/sweeps/{sweep}", None,                       "401 200 404 404 200 404 404 200 404"),
    ("POST", "/api/v1/sweeps/{sweep}/cancel", {},                 "401 200 404 404 200 404 404 200 404"),
    ("GET", "/api/v1/jobs/{job}", None,                           "401 200+ 404 404 200 404 404 200+ 404"),
    ("GET", "/api/v1/jobs/{job}/log", None,                       "401 200 404 404 200 404 404 200 404"),
    ("GET", "/api/v1/jobs/{job}/audit", None,                     "401 200 404 404 200 404 404 200 404"),
    ("GET", "/api/v1/jobs/{job}/log/search", {"q": "x"},          "401 200 404 404 200 404 404 200 404"),
    ("GET", "/api/v1/jobs/{job}/log/download", None,              "401 200 404 404 200 404 404 200 404"),
    ("GET", "/api/v1/jobs/{job}/metrics", None,                   "401 200 404 404 200 404 404 200 404"),
    ("POST", "/api/v1/jobs/{job}/cancel", {},                     "401 200+ 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/pause", {},                      "401 200+ 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{paused}/resume", {},                  "401 200+ 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{blocked}/approve", {},                "401 403 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{blocked}/reject", {"reason": "no"},   "401 403 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/priority", {"priority": 5},      "401 200+ 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/priority", {"priority": 20},     "401 403 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/priority", {"priority": 1000},   "401 403 404 404 403 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/priority", {"priority": -1000},  "401 200+ 404 404 403 404 404 200+ 404"),
    ("POST", "/api/v1/jobs/{job}/share", {"user": "tom"},         "401 200 404 404 403 404 404 200 404"),
    ("GET", "/api/v1/approvals", None,                            "401 403 403 403 200 200 403 200 403"),
    ("GET", "/api/v1/queue", None,                                "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/queue/stats", None,                          "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/queue/me", None,                             "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/queue/position/{job}", None,                 "401 200 404 404 200 404 404 200 404"),
    ("POST", "/api/v1/queue/{job}/cancel", {},                    "401 200+ 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/queue/{blocked}/approve", {},               "401 403 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/queue/{blocked}/reject?reason=no", {},      "401 403 404 404 200 404 404 200+ 404"),
    ("POST", "/api/v1/queue/reorder", {"job": "{job}", "priority": 20}, "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/queue/pause", {},                           "401 403 403 403 403 403 403 204 403"),
    ("POST", "/api/v1/queue/resume", {},                          "401 403 403 403 403 403 403 204 403"),
    ("GET", "/api/v1/queue/concurrency", None,                    "401 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/queue/concurrency", {"max_concurrent": 4},  "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/queue/process", {},                         "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/queue/cleanup", {},                         "401 403 403 403 403 403 403 200 403"),
    ("GET", "/api/v1/quota/status", None,                         "401 200 200 200 200 200 200 200 200"),
    ("PUT", "/api/v1/admin/quotas", {"user": "alice", "daily_gpu_seconds": 60}, "401 403 403 403 403 403 403 200 403"),
    ("GET", "/api/v1/policies", None,                             "401 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/policies", {"type": "serial", "config": {}}, "401 403 403 403 403 403 403 201 403"),
    ("GET", "/api/v1/policies/{policy}", None,                    "401 200 200 200 200 200 200 200 200"),
    ("PUT", "/api/v1/policies/{policy}", {"type": "off_peak", "config": {}, "enabled": False}, "401 403 403 403 403 403 403 200 403"),
    ("PATCH", "/api/v1/policies/{policy}", {"enabled": False},    "401 403 403 403 403 403 403 200 403"),
    ("DELETE", "/api/v1/policies/{policy}", None,                 "401 403 403 403 403 403 403 204 403"),
    ("GET", "/api/v1/analytics", None,                            "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/simulations", None,                          "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/simulations", {"trace": "submit_time,gpus,runtime,user\n0,1,5,a\n", "nodes": [1]}, "401 403 403 403 403 403 403 201 403"),
    ("GET", "/api/v1/simulations/999", None,                      "401 403 403 403 403 403 403 404 403"),
    ("GET", "/api/v1/users", None,                                "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/users", {"username": "newbie"},             "401 403 403 403 403 403 403 201 403"),
    ("GET", "/api/v1/users/alice", None,                          "401 403 403 403 403 403 403 200 403"),
    ("PATCH", "/api/v1/users/alice", {"level": "lead"},           "401 403 403 403 403 403 403 200 403"),
    ("GET", "/api/v1/teams", None,                                "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/teams", {"name": "robotics"},               "401 403 403 403 403 403 403 201 403"),
    ("GET", "/api/v1/teams/vision", None,                         "401 403 403 403 403 403 403 200 403"),
    ("PATCH", "/api/v1/teams/nlp", {"name": "language"},          "401 403 403 403 403 403 403 200 403"),
    ("DELETE", "/api/v1/teams/vision", None,                      "401 403 403 403 403 403 403 409 403"),
    ("GET", "/api/v1/levels", None,                               "401 403 403 403 403 403 403 200 403"),
    ("PATCH", "/api/v1/levels/viewer", {"max_time_limit_seconds": 60}, "401 403 403 403 403 403 403 200 403"),
    ("GET", "/api/v1/templates", None,                            "401 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/templates", {"name": "bye", "argv_template": ["/bin/echo", "bye"]}, "401 403 403 403 403 403 403 201 403"),
    ("GET", "/api/v1/templates/hello", None,                      "401 403 403 403 403 403 403 200 403"),
    ("PATCH", "/api/v1/templates/hello", {"enabled": False},      "401 403 403 403 403 403 403 200 403"),
    ("DELETE", "/api/v1/templates/hello", None,                   "401 403 403 403 403 403 403 204 403"),
    ("GET", "/api/v1/me", None,                                   "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/me/notifications", None,                    "401 200 200 200 200 200 200 200 200"),
    ("PATCH", "/api/v1/me/notifications", {"kinds": {"started": {"email": True}}}, "401 200 200 200 200 200 200 200 200"),
    ("PUT", "/api/v1/me/notifications/webhook", {"url": "https://hooks.example.org/x"}, "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/me/notifications/deliveries", None,          "401 200 200 200 200 200 200 200 200"),
    ("DELETE", "/api/v1/me/notifications/webhook", None,          "401 404 404 404 404 404 404 404 404"),
    ("GET", "/api/v1/notifications/team-hooks", None,             "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/notifications/team-hooks", {"team": "vision", "url": "https://hooks.example.org/t", "kinds": ["failed"]}, "401 403 403 403 403 403 403 201 403"),
    ("DELETE", "/api/v1/notifications/team-hooks/999999", None,   "401 403 403 403 403 403 403 404 403"),
    ("GET", "/api/v1/tokens", None,                               "401 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/tokens", {"name": "laptop", "days": 7},     "401 201 201 201 201 201 201 201 201"),
    ("DELETE", "/api/v1/tokens/{token}", None,                    "401 204 404 404 404 404 404 404 404"),
    ("GET", "/api/v1/nodes", None,                                "401 200 200 200 200 200 200 200 200"),
    ("POST", "/api/v1/nodes/testnode/drain", {},                  "401 403 403 403 403 403 403 200 403"),
    ("POST", "/api/v1/nodes/testnode/undrain", {},                "401 403 403 403 403 403 403 200 403"),
    ("GET", "/api/v1/system/status", None,                        "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/schema/", None,                              "401 200 200 200 200 200 200 200 200"),
    ("GET", "/api/v1/docs/", None,                                "401 200 200 200 200 200 200 200 200"),
    # The pages (scheduling/urls.py): a login first; a job's page and buttons as the API decides.
    ("GET", "/", None,                                            "302 200 200 200 200 200 200 200 200"),
    ("GET", "/jobs/{job}/", None,                                 "302 200 404 404 200 404 404 200 404"),
    ("GET", "/jobs/compare/?jobs={job}", None,                    "302 200 200 200 200 200 200 200 200"),
    ("GET", "/jobs/compare/?sweep={sweep}", None,                 "302 200 404 404 200 404 404 200 404"),
    ("POST", "/jobs/{job}/pause", {},                             "302 302 404 404 302 404 404 302 404"),
    ("POST", "/jobs/{paused}/resume", {},                         "302 302 404 404 302 404 404 302 404"),
    ("POST", "/jobs/{job}/cancel", {},                            "302 302 404 404 302 404 404 302 404"),
    ("GET", "/gpus/", None,                                       "302 200 200 200 200 200 200 200 200"),
    ("GET", "/me/", None,                                         "302 200 200 200 200 200 200 200 200"),
    ("POST", "/me/clear", {},                                     "302 302 302 302 302 302 302 302 302"),
    ("GET", "/me/clear", None,                                    "302 405 405 405 405 405 405 405 405"),
    ("GET", "/submit/", None,                                     "302 200 200 200 200 200 403 200 200"),
    ("POST", "/submit/", {"template": "hello"},                   "302 302 302 302 302 302 403 302 302"),
    ("GET", "/approvals/", None,                                  "302 403 403 403 200 200 403 200 403"),
    ("POST", "/approvals/", {"job": "{blocked}", "action": "approve"}, "302 403 403 403 302 404 403 302 403"),
    ("GET", "/notifications/", None,                              "302 200 200 200 200 200 200 200 200"),
    ("POST", "/notifications/", {"email_failed": "on", "url": "https://hooks.example.org/p"}, "302 200 200 200 200 200 200 200 200"),
    ("GET", "/analytics/", None,                                  "302 200 200 200 200 200 200 200 200"),
    # Their own API tokens (accounts/urls.py): everyone's own; revoking another's deletes nothing.
    ("GET", "/tokens/", None,                                     "302 200 200 200 200 200 200 200 200"),
    ("POST", "/tokens/", {"name": "laptop", "days": "7"},         "302 200 200 200 200 200 200 200 200"),
    ("POST", "/tokens/{token}/revoke", {},                        "302 302 302 302 302 302 302 302 302"),
    # The admin: staff enter; jobs as their level allows; everything else for gpuq admins only.
    ("GET", "/admin/", None,                                      "302 302 302 302 200 200 200 200 200"),
    ("GET", "/admin/scheduling/job/", None,                       "302 302 302 302 200 200 200 200 200"),
    ("GET", "/admin/scheduling/job/{job}/change/", None,          "302 302 302 302 200 302 302 200+ 302"),
    ("GET", "/admin/scheduling/job/queue/", None,                 "302 302 302 302 200 200 200 200 200"),
    ("POST", "/admin/scheduling/job/queue/move/", {"job": "{job}", "before": "{blocked}"}, "302 302 302 302 403 403 403 200 403"),
    ("POST", "/admin/scheduling/job/{job}/delete/", {"post": "yes"}, "302 302 302 302 403 403 403 403 403"),
    ("GET", "/admin/scheduling/schedulingpolicy/add/", None,      "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/scheduling/simulation/add/", None,            "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/scheduling/simulation/", None,                "302 302 302 302 403 403 403 200 403"),
    ("POST", "/admin/scheduling/schedulingpolicy/{policy}/change/", {"type": "off_peak", "config": "{}"}, "302 302 302 302 403 403 403 302 403"),
    ("GET", "/admin/scheduling/gpuquota/add/", None,              "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/scheduling/jobtemplate/", None,               "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/auth/user/{owner}/change/", None,             "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/auth/group/", None,                           "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/accounts/team/", None,                        "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/accounts/apitoken/", None,                    "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/gpus/node/", None,                            "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/gpus/gpu/", None,                             "302 302 302 302 403 403 403 200 403"),
    ("GET", "/admin/django_q/schedule/", None,                    "302 302 302 302 403 403 403 200 403"),
    # The live websocket: logged-in users only.
    ("WS", "/ws/events", None,                                    "closed 101 101 101 101 101 101 101 101"),
]
# fmt: on


class World:
    """Everyone of COLUMNS, alice's jobs (with a secret in their env), a template, a node, a policy."""

    def __init__(self):
        vision, nlp = Team.objects.create(name="vision"), Team.objects.create(name="nlp")
        root = get_user_model().objects.create_superuser(username="root", password="pw-root", email="")
        Profile.objects.create(user=root, level=Level.ADMIN)
        self.users = {
            "anonymous": None,
            "owner": make_user("alice", team=vision),
            "teammate": make_user("tom", team=vision),
            "other": make_user("olga", team=nlp),
            "lead": make_user("lena", level=Level.LEAD, team=vision, is_staff=True),
            "other_lead": make_user("nick", level=Level.LEAD, team=nlp, is_staff=True),
            "viewer": make_user("victor", level=Level.VIEWER, team=vision, is_staff=True),
            "admin": root,
            # Staff with no Profile: a researcher without a team, whatever the staff flag suggests.
            "staff": get_user_model().objects.create_user(username="sam", password="pw-sam", is_staff=True),
        }
        alice = self.users["owner"]

        def job(status, **fields):
            return Job.objects.create(
                owner=alice,
                team=vision,
                status=status,
                argv=["/bin/echo", "hi"],
                env={"API_KEY": "s3cret"},
                priority=10,
                submitted_at=timezone.now(),
                **fields,
            )

        node_register(
            name="testnode",
            backend="declared",
            gpus=parse_declared("2x24GB", node_name="testnode"),
            labels={},
            boot_id="",
        )
        JobTemplate.objects.create(name="hello", argv_template=["/bin/echo", "hi"], params_schema={})
        sweep = Sweep.objects.create(owner=alice, team=vision, name="sweep", size=1)
        self.ids = {
            "sweep": sweep.pk,
            "job": job(Status.PENDING, sweep=sweep, array_index=0).pk,
            "blocked": job(Status.BLOCKED, wait_reason="approval").pk,
            "paused": job(Status.PAUSED, wait_reason="paused").pk,
            "policy": SchedulingPolicy.objects.create(
                type=PolicyType.OFF_PEAK, config={"start": "22:00"}, enabled=False
            ).pk,
            "owner": alice.pk,
            "token": ApiToken.issue(user=alice, name="alices")[0].pk,
        }

    def fill(self, value):
        """A body's "{name}" becomes the world's id; a path's {name} too."""
        if isinstance(value, dict):
            return {k: self.fill(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if (
            isinstance(value, str)
            and value.startswith("{")
            and value.endswith("}")
            and value[1:-1] in self.ids
        ):
            return self.ids[value[1:-1]]
        return value


def _shows_env(response) -> bool:
    """Whether a reply carries a job's env: a JSON job (or page of jobs) with the key, or the admin's
    change form with the field."""
    if response.get("Content-Type", "").startswith("application/json"):
        body = json.loads(response.content or b"null")
        jobs = body.get("results", [body]) if isinstance(body, dict) else []
        return any(isinstance(j, dict) and "env" in j for j in jobs)
    content = b"".join(response.streaming_content) if response.streaming else response.content
    return b"field-env" in content


def _connect(user) -> str:
    from scheduling.live import EventsConsumer, relay

    async def attempt():
        communicator = WebsocketCommunicator(EventsConsumer.as_asgi(), "/ws/events")
        communicator.scope["user"] = user or AnonymousUser()
        connected, _ = await communicator.connect()
        await communicator.disconnect()
        await relay.stop()  # the relay belongs to this test's event loop: stop it with it
        return "101" if connected else "closed"

    return async_to_sync(attempt)()


def cell(world: World, actor: str, method: str, path: str, body) -> str:
    user = world.users[actor]
    if method == "WS":
        return _connect(user)
    client = APIClient()
    if user is not None:
        client.force_login(user)
    url = path.format(**world.ids)
    send = getattr(client, method.lower())
    if url.startswith("/api/"):
        response = send(url, world.fill(body), format="json") if body is not None else send(url)
    else:
        response = send(url, world.fill(body)) if body is not None else send(url)
    shown = "+" if 200 <= response.status_code < 300 and _shows_env(response) else ""
    return f"{response.status_code}{shown}"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "body", "expected"), ROWS, ids=[f"{r[0]} {r[1]} {r[2]}" for r in ROWS]
)
def test_permission_matrix(method, path, body, expected):
    world = World()
    got = {}
    for actor in COLUMNS:
        with transaction.atomic():
            got[actor] = cell(world, actor, method, path, body)
            transaction.set_rollback(True)
    assert got == dict(zip(COLUMNS, expected.split(), strict=True))


def _names(patterns, prefix=""):
    for p in patterns:
        if isinstance(p, URLResolver):
            yield from _names(p.url_patterns, prefix)
        elif isinstance(p, URLPattern) and p.name:
            yield p.name


def test_every_api_endpoint_and_page_has_a_row():
    from accounts import urls as account_pages
    from scheduling import urls as pages
    from scheduling.api import urls as api

    covered = {
        resolve(
            path.format(job=1, blocked=2, paused=3, policy=4, owner=5, token=6, sweep=7).split("?")[0]
        ).url_name
        for _, path, _, _ in ROWS
        if path.startswith("/") and not path.startswith("/ws/")
    }
    wanted = (
        set(_names(api.urlpatterns)) | set(_names(pages.urlpatterns)) | set(_names(account_pages.urlpatterns))
    )
    assert wanted - covered == set()
