"""A model version's data window is now the oldest and newest event it was trained on.

Before, `data_window_end` held the time of the run (which `created_at` already shows), so a
model trained on imported history ending in 2014 showed a window ending today; and with
`window_days` set, `data_window_start` held the run's time minus those days, not an event's.
Those values are cleared on the versions trained before (the admin shows them as empty):
what they were trained on was not recorded. Migrating back puts the run's time back.
"""

from django.db import migrations, models
from django.db.models import F


def clear_run_times(apps, schema_editor):
    ModelVersion = apps.get_model("recommendations", "ModelVersion")
    ModelVersion.objects.update(data_window_end=None)
    windowed = ModelVersion.objects.filter(config__window_days__isnull=False).exclude(
        config__window_days=None
    )
    windowed.update(data_window_start=None)


def restore_run_times(apps, schema_editor):
    ModelVersion = apps.get_model("recommendations", "ModelVersion")
    ModelVersion.objects.filter(data_window_end=None).update(data_window_end=F("created_at"))


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0022_search_folds_accents_and_reads_placement"),
    ]

    operations = [
        migrations.AlterField(
            model_name="modelversion",
            name="data_window_end",
            field=models.DateTimeField(blank=True, null=True, verbose_name="newest event trained on"),
        ),
        migrations.AlterField(
            model_name="modelversion",
            name="data_window_start",
            field=models.DateTimeField(blank=True, null=True, verbose_name="oldest event trained on"),
        ),
        migrations.RunPython(clear_run_times, restore_run_times),
    ]
