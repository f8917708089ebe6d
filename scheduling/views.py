"""Server-rendered pages. Each one authorizes, calls selectors or services and renders. Live pages render
their body as a fragment too (`?fragment=1`), which static/gpuq/live.js refetches when events arrive."""

import functools
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from rest_framework import serializers

from accounts.models import Team
from accounts.permissions import (
    actable_job_ids,
    can_act_on_job,
    can_submit,
    can_submit_raw,
    is_lead_or_admin,
    priority_ceiling,
)
from queueproject.strict import json_problem, whole_number
from scheduling import analytics, approvals, listing, quotas, retention, selectors, services
from scheduling.api.serializers import JobSubmitIn
from scheduling.models import JobTemplate, WaitReason
from scheduling.relay import latest_seq
from scheduling.states import HOLDS_GPUS, TERMINAL, Status
from scheduling.transitions import InvalidTransition, TransitionConflict


def live_page(view):
    """For a page that follows the live stream: read the stream's position before the view reads
    anything it shows, so every change the page may have missed comes after that position."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        request.live_cursor = latest_seq() if request.GET.get("fragment") != "1" else None
        return view(request, *args, **kwargs)

    return wrapper


def _live(request, page: str, fragment: str, context: dict):
    """The whole page, or only its live body when the page's script asks for it. The whole page carries
    the stream position read before its content (`live_page`), so its script follows the stream from
    there: a change made while the page was rendered, or before the websocket opened, is not missed."""
    if request.GET.get("fragment") == "1":
        return render(request, fragment, context)
    return render(request, page, {**context, "last_event": request.live_cursor})


def _list_state(request):
    """The filters and page size a list page was asked for; a bad value is shown as an error and ignored."""
    try:
        return listing.Filters.parse(request.GET), listing.page_size(request.GET), {}
    except listing.BadFilter as error:
        return listing.Filters(), settings.GPUQ_PAGE_SIZE, {error.field: error.message}


def _query(request, *drop: str) -> str:
    """The page's query string without `drop` (and never `fragment`): links keep the filter state."""
    params = request.GET.copy()
    for name in ("fragment", *drop):
        params.pop(name, None)
    return params.urlencode()


def _list_context(request, filters, errors) -> dict:
    return {
        "filters": filters,
        "errors": errors,
        "sorts": list(listing.SORTS),
        "statuses": Status.choices,
        "reasons": WaitReason.choices[1:],
        "templates": list(JobTemplate.objects.order_by("name").values_list("name", flat=True)),
        "teams": list(Team.objects.order_by("name").values_list("name", flat=True)),
        "query": _query(request),
    }


@login_required
@live_page
def queue_page(request):
    """The queue: running jobs, then one page of waiting jobs and one of held jobs (`page`, `held`),
    filtered, searched and sorted in the database (listing.Filters)."""
    filters, size, errors = _list_state(request)
    the_plan = listing.plan()
    running = listing.running(filters, the_plan) if listing.shows(filters, HOLDS_GPUS) else []
    pending_ids = listing.pending_ids(filters, the_plan) if listing.shows(filters, [Status.PENDING]) else []
    pending = listing.paginate(pending_ids, request.GET.get("page"), size)
    pending.object_list = listing.pending_entries(list(pending.object_list), the_plan)
    held_jobs = (
        listing.held_counted(filters, the_plan)
        if listing.shows(filters, (*listing.HELD, Status.PENDING))
        else []
    )
    held = listing.paginate(held_jobs, request.GET.get("held"), size)
    held.object_list = listing.held_entries(held.object_list, the_plan, filters, ("page", held.number), size)
    jobs = [e.job for e in (*running, *pending.object_list, *held.object_list)]
    context = {
        **_list_context(request, filters, errors),
        "running": running,
        "pending": pending.object_list,
        "pending_page": pending,
        "held": held.object_list,
        "held_page": held,
        "page_query": _query(request, "page"),
        "held_query": _query(request, "held"),
        "stats": listing.memoized(
            "stats", listing.queue_version(the_plan), lambda: selectors.queue_stats(by_user=False)
        ),
        # Everyone sees the queue; a job's own page is linked only for those who may read it.
        "visible": set(
            selectors.visible_jobs(request.user)
            .filter(pk__in=[j.pk for j in jobs])
            .values_list("pk", flat=True)
        ),
        "actable": actable_job_ids(request.user, jobs),
        "row_version": listing.queue_version(the_plan),  # rows are rendered once per version (queue_row)
    }
    return _live(request, "scheduling/queue.html", "scheduling/_queue_body.html", context)


@login_required
@live_page
def job_page(request, job_id: int):
    job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
    transitions = list(job.transitions.select_related("triggered_by").order_by("id"))
    context = {
        "job": job,
        "transitions": transitions,
        "attempts": selectors.attempts(job),
        "finished": job.status in TERMINAL,
        "can_act": can_act_on_job(request.user, job),
        "members": list(job.batch_members.values_list("pk", flat=True)),
    }
    return _live(request, "scheduling/job.html", "scheduling/_job_body.html", context)


@login_required
@require_POST
def job_action(request, job_id: int, action: str):
    """Pause, resume or cancel from a page's button, through the same services as the API."""
    job = get_object_or_404(selectors.visible_jobs(request.user), pk=job_id)
    act = {"pause": services.job_pause, "resume": services.job_resume, "cancel": services.job_cancel}.get(
        action
    )
    if act is None:
        raise Http404(action)
    try:
        act(job=job, user=request.user)
        messages.success(request, f"Job {job.pk}: {action} asked.")
    except PermissionDenied as error:
        messages.error(request, str(error))
    except (ValidationError, InvalidTransition, TransitionConflict) as error:
        messages.error(request, f"Job {job.pk}: {_message(error)}")
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()}):
        back = "/"
    return redirect(back or "/")


def _message(error) -> str:
    if isinstance(error, ValidationError):
        return "; ".join(f"{k}: {', '.join(v)}" for k, v in error.message_dict.items())
    return str(error)


APPROVALS_PER_PAGE = 25


@login_required
def approvals_page(request):
    """Leads and admins: the blocked jobs they may decide on, with cost and rule, and approve or reject
    buttons (a reason is required to reject) that POST here and go through the API's services."""
    if not is_lead_or_admin(request.user):
        raise PermissionDenied("Only leads and admins approve jobs.")
    number = request.POST.get("page") or request.GET.get("page") or "1"
    if request.method == "POST":
        _decide(request)
        return redirect(f"{reverse('approvals')}?page={number if whole_number(number) else 1}")
    page = Paginator(approvals.inbox(request.user), APPROVALS_PER_PAGE).get_page(number)
    return render(
        request, "scheduling/approvals.html", {"page": page, "entries": approvals.entries(page.object_list)}
    )


def _decide(request) -> None:
    """Approve or reject the posted job; the outcome is a message on the page. A job the user cannot see
    is a 404, as in the API; one they see but may not decide on is refused by the service."""
    job_id, action = request.POST.get("job", ""), request.POST.get("action", "")
    job = get_object_or_404(
        selectors.visible_jobs(request.user), pk=int(job_id) if whole_number(job_id) else 0
    )
    decide, done = {
        "approve": (services.job_approve, "approved"),
        "reject": (services.job_reject, "rejected"),
    }.get(action, (None, ""))
    if decide is None:
        messages.error(request, f"action: {action!r} is not approve or reject")
        return
    try:
        decide(job=job, user=request.user, reason=request.POST.get("reason", "").strip())
        messages.success(request, f"Job {job.pk} {done}.")
    except PermissionDenied as error:
        messages.error(request, f"Job {job.pk}: {error}")
    except (ValidationError, InvalidTransition, TransitionConflict) as error:
        messages.error(request, f"Job {job.pk}: {_message(error)}")


@login_required
@live_page
def gpus_page(request):
    return _live(
        request, "scheduling/gpus.html", "scheduling/_gpus_body.html", {"nodes": selectors.gpu_board()}
    )


@login_required
@live_page
def my_jobs_page(request):
    """The user's jobs, paged, filtered and sorted; running ones first, so they open the first page."""
    filters, size, errors = _list_state(request)
    page = listing.my_jobs_page(request.user, filters, request.GET.get("page"), size)
    jobs = list(page.object_list)
    context = {
        **_list_context(request, filters, errors),
        "jobs": jobs,
        "jobs_page": page,
        "page_query": _query(request, "page"),
        "quota": quotas.quota_status(request.user),
        "actable": actable_job_ids(request.user, jobs),
    }
    return _live(request, "scheduling/me.html", "scheduling/_me_body.html", context)


@login_required
@require_POST
def my_jobs_clear(request):
    """Clear completed (seed 003): archive and remove all of this user's finished jobs, through the same
    service as the cleanup API; their active jobs, and others' jobs, are never touched."""
    now = timezone.now()
    removed = retention.jobs_cleanup(finished_before=now, now=now, owner=request.user)
    messages.success(request, f"Cleared {removed.jobs} finished job(s).")
    return redirect("me")


@login_required
def submit_page(request):
    """Submit a template (its parameters checked against its schema) or, for those allowed, a raw
    command; through the same service as the API."""
    if not can_submit(request.user):
        raise PermissionDenied("Viewers cannot submit jobs.")
    templates = list(JobTemplate.objects.filter(enabled=True).order_by("name"))
    raw_allowed = can_submit_raw(request.user)
    chosen = request.POST.get("template") or request.GET.get("template") or ""
    template = next((t for t in templates if t.name == chosen), None)
    ceiling = priority_ceiling(request.user)
    errors: dict[str, list[str]] = {}
    values = request.POST if request.method == "POST" else {}
    fields = _param_fields(template, values) if template else []
    if request.method == "POST":
        try:
            job = services.job_submit(
                user=request.user, **_submission(request.POST, template, fields, raw_allowed)
            )
            return redirect("job", job_id=job.pk)
        except ValidationError as error:
            errors = error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}
        except PermissionDenied as error:
            errors = {"__all__": [str(error)]}
    context = {
        "templates": templates,
        "template": template,
        "fields": fields,
        "raw_allowed": raw_allowed,
        "tiers": [
            (p, n)
            for p, n in ((30, "Urgent"), (20, "High"), (10, "Normal"), (0, "Low"), (-10, "Background"))
            if p <= ceiling
        ],
        "ceiling": ceiling,
        "errors": errors,
        "values": values,
        "defaults": {
            "gpu_count": template.default_gpu_count if template else 1,
            "time_limit_seconds": (template.default_time_limit_seconds or "") if template else "",
        },
    }
    return render(request, "scheduling/submit.html", context, status=400 if errors else 200)


def _param_fields(template: JobTemplate, values) -> list[dict]:
    """One form field per property of the template's parameter schema."""
    schema = template.params_schema or {}
    required = set(schema.get("required", []))
    fields = []
    for name, spec in (schema.get("properties") or {}).items():
        kind = spec.get("type", "string")
        fields.append(
            {
                "name": name,
                "input": "select"
                if "enum" in spec
                else {"integer": "number", "number": "number", "boolean": "checkbox"}.get(kind, "text"),
                "type": kind,
                "choices": spec.get("enum", []),
                "step": "1" if kind == "integer" else "any",
                "required": name in required,
                "help": spec.get("description", ""),
                "value": values.get(f"param_{name}", spec.get("default", "")),
            }
        )
    return fields


def _submission(post, template, fields, raw_allowed) -> dict:
    """The service's arguments from the form; a value that is not of its field's type is a ValidationError."""
    data: dict = {"name": _checked("name", post.get("name", "").strip())}
    if template is not None:
        params = {}
        for field in fields:
            raw = post.get(f"param_{field['name']}", "")
            if field["type"] == "boolean":
                params[field["name"]] = raw == "on"
            elif raw == "":
                continue
            elif field["type"] in ("integer", "number"):
                try:
                    params[field["name"]] = int(raw) if field["type"] == "integer" else float(raw)
                except ValueError:
                    raise ValidationError({"params": f"{field['name']}: a number"}) from None
            else:
                params[field["name"]] = raw
        problem = json_problem(params)
        if problem:
            raise ValidationError({"params": problem})
        data.update(template=template, params=params)
    else:
        lines = [line.strip() for line in post.get("argv", "").splitlines() if line.strip()]
        if not raw_allowed:
            raise PermissionDenied(
                "Choose a template: raw commands need the 'submit raw commands' permission."
            )
        if not lines:
            raise ValidationError(
                {"template": "choose a template, or write a command (one argument per line)"}
            )
        data["argv"] = _checked("argv", lines)
    for key in ("gpu_count", "priority", "time_limit_seconds"):
        if post.get(key, "") != "":
            data[key] = _checked(key, post[key])
    if post.get("start_after"):
        try:
            data["start_after"] = datetime.fromisoformat(post["start_after"]).replace(tzinfo=UTC)
        except ValueError:
            raise ValidationError({"start_after": "a date and time"}) from None
    data["off_peak_only"] = post.get("off_peak_only") == "on"
    return data


def _checked(key: str, value):
    """A form value checked by the API's own field for it (type, bounds, no NUL), as a ValidationError
    naming the field: out-of-range numbers never reach the database."""
    try:
        return JobSubmitIn().fields[key].run_validation(value)
    except serializers.ValidationError as error:
        detail = error.detail if isinstance(error.detail, list) else [str(error.detail)]
        raise ValidationError({key: [str(m) for m in detail]}) from None


COMPARE_MAX = 20  # jobs on one compare chart


@login_required
def compare_page(request):
    """The curves of several jobs on one chart: `?jobs=1,2,3` or `?sweep=ID` (its first COMPARE_MAX jobs),
    `&series=loss` to choose the series shown first. Each job is checked: those the user may not read are
    named as not found, and their series are never asked for."""
    jobs_raw, sweep_raw = request.GET.get("jobs", ""), request.GET.get("sweep", "")
    ids, error = [], ""
    if sweep_raw:
        if not whole_number(sweep_raw):
            error = "sweep: a sweep's id (a whole number)"
        else:
            sweep = get_object_or_404(selectors.visible_sweeps(request.user), pk=int(sweep_raw))
            ids = list(sweep.jobs.order_by("array_index", "pk").values_list("pk", flat=True)[:COMPARE_MAX])
    else:
        parts = [part.strip() for part in jobs_raw.split(",") if part.strip()]
        if not parts or len(parts) > COMPARE_MAX or not all(whole_number(part) for part in parts):
            error = f"jobs: 1 to {COMPARE_MAX} job ids, comma-separated (?jobs=12,13,14)"
        else:
            ids = list(dict.fromkeys(int(part) for part in parts))
    found = {job.pk: job for job in selectors.visible_jobs(request.user).filter(pk__in=ids)}
    context = {
        "error": error,
        "jobs": [
            {"id": pk, "name": found[pk].name, "metrics": reverse("api-job-metrics", args=[pk])}
            for pk in ids
            if pk in found
        ],
        "missing": [pk for pk in ids if pk not in found],
        "series": request.GET.get("series", "")[:100],
    }
    return render(request, "scheduling/compare.html", context, status=400 if error else 200)


@login_required
def analytics_page(request):
    """The analytics over `since`..`until` (the API's parameters; by default the last 24 hours)."""
    now = timezone.now()
    try:
        since, until = analytics.parse_range(request.GET, now)
        error = ""
    except analytics.BadRange as bad:
        (since, until), error = analytics.parse_range({}, now), f"{bad.field}: {bad.message}"
    figures = analytics.figures(since=since, until=until, now=now)
    ranges = [("24 h", timedelta(hours=24)), ("7 days", timedelta(days=7)), ("30 days", timedelta(days=30))]
    context = {
        "charts": analytics.charts(figures),
        "estimate_error": figures.estimate_error,
        "since": since,
        "until": until,
        "error": error,
        "ranges": [(name, (now - span).strftime("%Y-%m-%dT%H:%M:%SZ")) for name, span in ranges],
    }
    return render(request, "scheduling/analytics.html", context, status=400 if error else 200)
