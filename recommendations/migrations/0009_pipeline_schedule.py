"""The pipeline's default beat schedule (editable in the admin's Periodic tasks).

Nightly retrain, hourly popularity/co-occurrence refresh, a frequent catch-up embed of new
products, and a daily purge of old model versions. Existing entries with these names are
left as the admin edited them.
"""

from django.db import migrations

CRONTAB = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*", "timezone": "UTC"}
SCHEDULE = [
    # name, task, crontab (minute, hour) or interval minutes, description
    (
        "Recommendations: nightly retrain",
        "recommendations.tasks.retrain",
        ("0", "2"),
        "Train, evaluate, embed and activate a new model version (gpu queue).",
    ),
    (
        "Recommendations: refresh popularity and co-occurrence",
        "recommendations.tasks.refresh_statistics",
        ("5", "*"),
        "Rebuild the popularity and bought/viewed-together tables serving falls back on.",
    ),
    (
        "Recommendations: embed new products",
        "recommendations.tasks.sync_product_vectors",
        15,
        "Give products without a vector one (e.g. saved while the broker was down); drop vectors "
        "of products that are gone or inactive.",
    ),
    (
        "Recommendations: purge old model versions",
        "recommendations.tasks.purge",
        ("30", "4"),
        "Retire model versions other than the active and the previous one (vectors and files).",
    ),
]


def add_schedule(apps, schema_editor):
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    for name, task, when, description in SCHEDULE:
        if isinstance(when, int):
            interval, _ = IntervalSchedule.objects.get_or_create(every=when, period="minutes")
            schedule = {"interval": interval}
        else:
            minute, hour = when
            crontab, _ = CrontabSchedule.objects.get_or_create(minute=minute, hour=hour, **CRONTAB)
            schedule = {"crontab": crontab}
        PeriodicTask.objects.get_or_create(
            name=name, defaults={"task": task, "description": description, **schedule}
        )


def remove_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=[name for name, *_ in SCHEDULE]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0008_retention_schedule"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(add_schedule, remove_schedule)]
