import accounts.models
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="profile",
            name="unix_username",
            field=models.CharField(
                blank=True,
                help_text="The user's own Unix account on the GPU nodes; their jobs run as it when GPUQ_RUN_AS=user.",
                max_length=32,
                validators=[accounts.models.UNIX_USERNAME],
            ),
        ),
    ]
