"""The app's beat schedules at the shop's time of day (settings.TIME_ZONE).

Migrations 0008-0012 created their crontabs in UTC, so a shop in Asia/Shanghai retrained at
10:00 local time. Each of the app's own tasks that still has the times it was created with
is pointed at a crontab of the same times in TIME_ZONE (and back, in reverse); a schedule
edited in the admin stays as it is, and so does a crontab another task shares.
"""

from django.db import migrations
from django.utils import timezone

# name: (task, minute, hour), as 0008, 0009, 0010 and 0012 created them, every day.
SCHEDULES = {
    "Recommendations: purge expired events": (
        "recommendations.privacy.tasks.purge_expired_events",
        "30",
        "3",
    ),
    "Recommendations: nightly retrain": ("recommendations.tasks.retrain", "0", "2"),
    "Recommendations: refresh popularity and co-occurrence": (
        "recommendations.tasks.refresh_statistics",
        "5",
        "*",
    ),
    "Recommendations: purge old model versions": ("recommendations.tasks.purge", "30", "4"),
    "Recommendations: refresh marketing segments": (
        "recommendations.marketing.tasks.refresh_segments",
        "20",
        "*",
    ),
    "Recommendations: prune served lists": ("recommendations.serving.tasks.prune_served", "45", "3"),
}
EVERY_DAY = {"day_of_week": "*", "day_of_month": "*", "month_of_year": "*"}


def move_schedules(apps, schema_editor, source="UTC", target=None):
    """Point the app's tasks whose crontab is still its default in `source` at the same
    times in `target` (TIME_ZONE), and drop the crontabs no task uses any more."""
    target = target or timezone.get_default_timezone_name()
    if source == target:
        return
    CrontabSchedule = apps.get_model("django_celery_beat", "CrontabSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    moved = False
    for name, (task, minute, hour) in SCHEDULES.items():
        when = {"minute": minute, "hour": hour, **EVERY_DAY}
        defaults = {f"crontab__{field}": value for field, value in when.items()}
        entry = PeriodicTask.objects.filter(
            name=name, task=task, crontab__timezone=source, **defaults
        ).first()
        if entry is None:
            continue
        old = entry.crontab
        spec = {**when, "timezone": target}
        entry.crontab = CrontabSchedule.objects.filter(**spec).order_by("pk").first()
        entry.crontab = entry.crontab or CrontabSchedule.objects.create(**spec)
        entry.save(update_fields=["crontab"])
        if not PeriodicTask.objects.filter(crontab=old).exists():
            old.delete()
        moved = True
    if moved:  # what PeriodicTask's save signal does: a running beat reads the schedule again
        PeriodicTasks.objects.update_or_create(ident=1, defaults={"last_update": timezone.now()})


def move_back(apps, schema_editor):
    move_schedules(apps, schema_editor, source=timezone.get_default_timezone_name(), target="UTC")


class Migration(migrations.Migration):
    dependencies = [
        ("recommendations", "0027_event_product_id_any_case_index"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(move_schedules, move_back)]
