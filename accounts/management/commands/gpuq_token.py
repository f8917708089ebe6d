"""Issue an API token for a user and print its key (shown once; only its hash is stored). Every token
expires: --days from 1 to GPUQ_TOKEN_MAX_DAYS, the maximum when not given."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts.services import token_create


class Command(BaseCommand):
    help = __doc__

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="cli")
        parser.add_argument(
            "--days",
            type=int,
            default=None,
            help=f"expire after this many days (1 to GPUQ_TOKEN_MAX_DAYS, now {settings.GPUQ_TOKEN_MAX_DAYS}; "
            "default: the maximum)",
        )

    def handle(self, *args, username, name, days, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        try:
            _, key = token_create(user=user, name=name, days=days)
        except ValidationError as error:
            raise CommandError(
                "; ".join(f"--{field}: {', '.join(msgs)}" for field, msgs in error.message_dict.items())
            ) from None
        self.stdout.write(key)
