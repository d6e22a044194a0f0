"""Served-list retention: the task prunes old lists, a worker registers it and beat runs it daily."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from recommendations.models import ServedRecommendation
from recommendations.tasks import prune_served

pytestmark = pytest.mark.django_db


def served(rec_id: str, days_ago: float) -> None:
    ServedRecommendation.objects.create(
        id=rec_id, kind="trending", source="trending", product_ids=["1"], scores=[1.0], context={}
    )
    ServedRecommendation.objects.filter(pk=rec_id).update(
        created_at=timezone.now() - dt.timedelta(days=days_ago)
    )


def test_the_task_prunes_lists_older_than_the_retention(settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVED_RETENTION_DAYS": 30}
    served("old", 31)
    served("recent", 29)
    assert prune_served.apply().get() == 1
    assert list(ServedRecommendation.objects.values_list("pk", flat=True)) == ["recent"]
    assert prune_served.apply().get() == 0  # safe to run again


def test_a_worker_registers_the_task_and_beat_runs_it_daily():
    code = "from tasks.celery import app; app.loader.import_default_modules(); print(sorted(app.tasks))"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[2],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "tests.config.settings"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert f"'{prune_served.name}'" in result.stdout
    schedule = PeriodicTask.objects.get(task=prune_served.name)
    assert schedule.enabled and (schedule.crontab.minute, schedule.crontab.hour) == ("45", "3")
