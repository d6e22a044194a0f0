"""The default beat schedule: created by a data migration, idempotent, naming real tasks."""

import importlib
from zoneinfo import ZoneInfo

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django_celery_beat.models import CrontabSchedule, PeriodicTask, PeriodicTasks

from tasks.celery import app

schedule = importlib.import_module("recommendations.migrations.0009_pipeline_schedule")


@pytest.mark.django_db
def test_schedule_is_created_once_and_names_registered_tasks():
    PeriodicTask.objects.filter(name__startswith="Recommendations:").exclude(
        task__startswith="recommendations.privacy"
    ).delete()
    schedule.add_schedule(apps, None)
    schedule.add_schedule(apps, None)  # running the migration again changes nothing
    names = [name for name, *_ in schedule.SCHEDULE]
    entries = {t.name: t for t in PeriodicTask.objects.filter(name__in=names)}
    assert sorted(entries) == sorted(names)
    app.loader.import_default_modules()
    assert {t.task for t in entries.values()} <= set(app.tasks)
    retrain = entries["Recommendations: nightly retrain"]
    assert (retrain.crontab.minute, retrain.crontab.hour) == ("0", "2")
    assert entries["Recommendations: embed new products"].interval.every == 15
    schedule.remove_schedule(apps, None)
    assert not PeriodicTask.objects.filter(name__in=names).exists()


@pytest.mark.django_db
def test_the_apps_schedules_run_at_the_shops_time_of_day(settings):
    """Migrations 0008-0012 made their crontabs in UTC: a shop in Shanghai retrained at 10:00.
    The app's own entries that still carry those times move to TIME_ZONE, and back; one
    edited in the admin stays as it is, and so does a host's task sharing the UTC crontab."""
    name = "0028_schedules_follow_the_time_zone"
    follow = importlib.import_module(f"recommendations.migrations.{name}")
    # The models as the migration sees them: no signals tell the scheduler of a change.
    historical = MigrationExecutor(connection).loader.project_state([("recommendations", name)]).apps
    utc_03_30 = PeriodicTask.objects.get(name="Recommendations: purge expired events").crontab
    host = PeriodicTask.objects.create(name="Host: nightly report", task="shop.report", crontab=utc_03_30)
    edited = PeriodicTask.objects.get(name="Recommendations: prune served lists")
    edited.crontab = CrontabSchedule.objects.create(minute="45", hour="5", timezone="UTC")
    edited.save()
    PeriodicTasks.objects.all().delete()
    settings.TIME_ZONE = "Asia/Shanghai"
    shanghai = ZoneInfo("Asia/Shanghai")

    follow.move_schedules(historical, None)
    crontabs = {task.name: task.crontab for task in PeriodicTask.objects.filter(crontab__isnull=False)}
    retrain = crontabs["Recommendations: nightly retrain"]
    assert (retrain.minute, retrain.hour, retrain.timezone) == ("0", "2", shanghai)
    assert crontabs["Recommendations: purge expired events"].timezone == shanghai
    assert crontabs["Recommendations: refresh marketing segments"].timezone == shanghai
    assert crontabs["Host: nightly report"] == utc_03_30 and utc_03_30.timezone == ZoneInfo("UTC")
    assert crontabs["Recommendations: prune served lists"] == edited.crontab
    assert edited.crontab.timezone == ZoneInfo("UTC")
    assert PeriodicTasks.last_change() is not None  # a running beat reads the entries again

    host.delete()
    follow.move_back(historical, None)
    retrain = PeriodicTask.objects.get(name="Recommendations: nightly retrain").crontab
    assert (retrain.minute, retrain.hour, retrain.timezone) == ("0", "2", ZoneInfo("UTC"))
    assert not CrontabSchedule.objects.filter(timezone="Asia/Shanghai", periodictask__isnull=True).exists()
