# Joins the two branches of issue 10: attempts (0009) and idempotency keys with shipped logs (0010).

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [
        ("scheduling", "0009_attempts"),
        ("scheduling", "0010_idempotency"),
    ]

    operations = []
