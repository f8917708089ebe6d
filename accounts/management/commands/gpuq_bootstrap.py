"""Make sure an admin account, an API token, an example template and the fresh install's default
policies (concurrency: 5 running, 2 per user) exist, and say how to log in.

The admin's password and token are kept in the data folder (mode 600) so that a later start can print
them again; the database holds only the token's hash.
"""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from accounts.models import ApiToken, Level, Profile


def _secret_file(name: str) -> Path:
    return settings.DATA_DIR / name


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")


def _read_secret(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("--username", default=os.environ.get("GPUQ_ADMIN_USER", "admin"))
        parser.add_argument("--url", default="http://127.0.0.1:8000/")

    def handle(self, *args, username, url, **options):
        User = get_user_model()
        password_file = _secret_file("admin-password")
        user = User.objects.filter(username=username).first()
        if user is None:
            password = secrets.token_urlsafe(12)
            user = User.objects.create_superuser(username=username, email="", password=password)
            _write_secret(password_file, password)
        Profile.objects.get_or_create(user=user, defaults={"level": Level.ADMIN})
        password = _read_secret(password_file) or "(set before; change it with `manage.py changepassword`)"

        token_file = _secret_file("admin-token")
        key = _read_secret(token_file)
        if not key or ApiToken.find(key) is None:
            _, key = ApiToken.issue(user=user, name="bootstrap")
            _write_secret(token_file, key)

        from scheduling import policies
        from scheduling.models import JobTemplate

        policies.install_defaults()  # seed 001's concurrency limits, on a fresh install only

        if not JobTemplate.objects.exists():
            template = JobTemplate(
                name="hello-gpu",
                description="Prints the GPUs it was given and a message.",
                argv_template=[
                    "python3",
                    "-c",
                    "import os, sys; print('GPUs:', os.environ['CUDA_VISIBLE_DEVICES']); print(sys.argv[1])",
                    "{message}",
                ],
                params_schema={
                    "type": "object",
                    "properties": {"message": {"type": "string", "maxLength": 200}},
                    "required": ["message"],
                    "additionalProperties": False,
                },
            )
            template.full_clean()  # resolves "python3" to an absolute path: a job's PATH cannot change it
            template.save()
        self.stdout.write(
            f"gpuq: open {url} and log in as {username} / {password}\n"
            f"      API token: {key}  (kept in {token_file})\n"
            f"      API docs:  {url}api/v1/docs/\n"
        )
