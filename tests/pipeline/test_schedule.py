"""The default beat schedule: created by a data migration, idempotent, naming real tasks."""

import importlib

import pytest
from django.apps import apps
from django_celery_beat.models import PeriodicTask

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
