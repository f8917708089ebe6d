"""Admins create, change and delete job templates without the Django admin (API and `gpuq_template`).

Every write runs the model's `full_clean()`, the same checks as the admin's form (field validators,
`JobTemplate.clean()`, the unique name), so a rule lives in one place: errors are ValidationErrors
naming the field (API: 400). A template that jobs or sweeps point to is not deleted (the foreign keys
protect it; API: 409): disable it (`enabled: false`) so nobody submits it any more."""

import logging

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import ProtectedError

from accounts.permissions import can_administer
from scheduling.models import Job, JobTemplate, Sweep
from scheduling.services import Conflict

log = logging.getLogger("gpuq.templates")

# The fields an admin sets (the API's and the command's input); everything else is the model's.
FIELDS = (
    "name",
    "description",
    "argv_template",
    "params_schema",
    "default_gpu_count",
    "default_time_limit_seconds",
    "max_time_limit_seconds",
    "default_env",
    "allowed_env",
    "enabled",
    "batchable",
    "batch_key_params",
    "batch_window_seconds",
    "batch_max_size",
    "batch_argv_template",
    "allow_idle",
)


def _require_admin(by) -> None:
    if by is not None and not can_administer(by):
        raise PermissionDenied("Only admins manage job templates.")


def _checked_save(template: JobTemplate, fields: dict) -> JobTemplate:
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise ValidationError({name: "not a template field" for name in sorted(unknown)})
    for name, value in fields.items():
        setattr(template, name, value)
    template.full_clean()  # as the admin's form: validators, clean() (resolves programs), unique name
    try:
        with transaction.atomic():
            template.save()
    except IntegrityError:  # another request took the name between the check and the save
        raise ValidationError({"name": f"a template named {template.name!r} already exists"}) from None
    return template


def template_create(*, by, **fields) -> JobTemplate:
    """A new template from `fields` (name and argv_template needed; the rest default as in the model)."""
    _require_admin(by)
    template = _checked_save(JobTemplate(), fields)
    log.info("template %s created by %s", template.name, by)
    return template


def template_update(*, by, template: JobTemplate, **fields) -> JobTemplate:
    """Change the given fields of a template (the rest are kept); checked as a whole afterwards.
    Jobs already submitted keep the argv they were rendered with."""
    _require_admin(by)
    template = _checked_save(template, fields)
    log.info("template %s changed by %s: %s", template.name, by, ", ".join(sorted(fields)) or "nothing")
    return template


def template_delete(*, by, template: JobTemplate) -> None:
    """Delete a template no job or sweep points to; otherwise Conflict (disable it instead)."""
    _require_admin(by)
    jobs = Job.objects.filter(template=template).count()
    sweeps = Sweep.objects.filter(template=template).count()
    if jobs or sweeps:
        raise Conflict(
            f"template {template.name} has {jobs} job(s) and {sweeps} sweep(s); it is kept for them: "
            "disable it instead (enabled: false)"
        )
    try:
        template.delete()
    except ProtectedError:  # a job submitted since the count
        raise Conflict(f"template {template.name} has jobs; disable it instead (enabled: false)") from None
    log.info("template %s deleted by %s", template.name, by)
