"""Manage job templates from a shell on the server (what the Django admin and the templates API do):

  manage.py gpuq_template list
  manage.py gpuq_template show train
  manage.py gpuq_template create train.json          # a JSON object: the body of POST /api/v1/templates
  manage.py gpuq_template update train changes.json  # the fields to change, as PATCH /api/v1/templates/train
  manage.py gpuq_template delete train               # refused while jobs or sweeps use it: disable it instead

A FILE of "-" reads standard input. The checks are the admin form's and the API's (scheduling/templates_admin.py)."""

import json
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from scheduling import templates_admin
from scheduling.api.serializers import TemplateAdminOut, TemplateIn
from scheduling.models import JobTemplate
from scheduling.services import Conflict


def _errors(errors: dict) -> str:
    return "; ".join(
        f"{field}: {' '.join(map(str, msgs)) if isinstance(msgs, list) else msgs}"
        for field, msgs in errors.items()
    )


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="every template, enabled or not, by name")
        actions.add_parser("show", help="one template as JSON").add_argument("name")
        actions.add_parser("create", help="define a template").add_argument(
            "file", help='JSON object, or "-"'
        )
        update = actions.add_parser("update", help="change some fields of a template")
        update.add_argument("name")
        update.add_argument("file", help='JSON object of the fields to change, or "-"')
        actions.add_parser("delete", help="delete a template no job uses").add_argument("name")

    def handle(self, *args, action, **options):
        try:
            getattr(self, "do_" + action)(**options)
        except ValidationError as error:
            raise CommandError(
                _errors(error.message_dict) if hasattr(error, "error_dict") else error.messages
            ) from None
        except Conflict as error:
            raise CommandError(str(error)) from None

    def _template(self, name: str) -> JobTemplate:
        template = JobTemplate.objects.filter(name=name).first()
        if template is None:
            raise CommandError(f"no template named {name!r}")
        return template

    def _body(self, file: str, *, partial: bool) -> dict:
        try:
            text = sys.stdin.read() if file == "-" else open(file, encoding="utf-8").read()  # noqa: SIM115
            body = json.loads(text)
        except (OSError, ValueError) as error:
            raise CommandError(f"{file}: {error}") from None
        data = TemplateIn(data=body, partial=partial)
        if not data.is_valid():
            raise CommandError(_errors(data.errors))
        return data.validated_data

    def _print(self, template: JobTemplate) -> None:
        self.stdout.write(json.dumps(TemplateAdminOut(template).data, indent=2))

    def do_list(self, **options):
        # Templates are few (admins define each one by hand); the API's list is not paged either.
        for template in JobTemplate.objects.order_by("name").only("name", "enabled", "argv_template"):
            state = "" if template.enabled else "  (disabled)"
            self.stdout.write(f"{template.name}  {' '.join(template.argv_template)}{state}")

    def do_show(self, name, **options):
        self._print(self._template(name))

    def do_create(self, file, **options):
        self._print(templates_admin.template_create(by=None, **self._body(file, partial=False)))

    def do_update(self, name, file, **options):
        body = self._body(file, partial=True)
        self._print(templates_admin.template_update(by=None, template=self._template(name), **body))

    def do_delete(self, name, **options):
        templates_admin.template_delete(by=None, template=self._template(name))
        self.stdout.write(f"template {name} deleted")
