"""Every API token expires: tokens made without an expiry get one (made + GPUQ_TOKEN_MAX_DAYS, or now +
that maximum if that is already past), then the field becomes required."""

from datetime import timedelta

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone


def give_expiry(apps, schema_editor):
    ApiToken = apps.get_model("accounts", "ApiToken")
    lifetime = timedelta(days=getattr(settings, "GPUQ_TOKEN_MAX_DAYS", 90))
    now = timezone.now()
    for token in ApiToken.objects.filter(expires_at__isnull=True).only("pk", "created_at"):
        expires = token.created_at + lifetime
        ApiToken.objects.filter(pk=token.pk).update(expires_at=expires if expires > now else now + lifetime)


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_profile_unix_username"),
    ]

    operations = [
        migrations.RunPython(give_expiry, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="apitoken",
            name="expires_at",
            field=models.DateTimeField(),
        ),
    ]
