"""Retention: old events are counted per day, then deleted, by a scheduled Celery task."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings
from django_celery_beat.models import PeriodicTask

from recommendations.models import AuditAction, AuditEntry, DailyEventCount, Event
from recommendations.privacy.retention import purge_expired_events, retention_cutoff
from recommendations.privacy.tasks import purge_expired_events as purge_task

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)


def retention(days, aggregate=True):
    return override_settings(
        RECOMMENDATIONS={
            **settings.RECOMMENDATIONS,
            "EVENT_RETENTION_DAYS": days,
            "EVENT_RETENTION_AGGREGATE": aggregate,
        }
    )


def add(days_ago, product="1", event_type="view", hours=0, query=""):
    return Event.objects.create(
        event_type=event_type,
        product_id=product,
        query=query,
        session_id="s1",
        timestamp=NOW - dt.timedelta(days=days_ago, hours=hours),
    )


def counters():
    return sorted(DailyEventCount.objects.values_list("day", "event_type", "product_id", "count"))


def test_cutoff_is_midnight_utc_and_setting_is_validated():
    assert retention_cutoff(NOW, 30) == dt.datetime(2026, 5, 16, tzinfo=dt.UTC)
    with retention(None):
        assert retention_cutoff(NOW) is None
    for bad in (0, -3, 2.5, "30", True):
        with pytest.raises(ImproperlyConfigured, match="EVENT_RETENTION_DAYS"):
            retention_cutoff(NOW, bad)


def test_old_events_are_counted_per_day_then_deleted():
    kept = [add(1).pk, add(29).pk, add(30, hours=-11).pk]  # 30 days ago at 23:00 is after the cutoff
    add(31, "1")
    add(31, "1", hours=1)
    add(31, "2", "purchase")
    add(400, "1", "search", query="my own name")

    with retention(30):
        report = purge_expired_events(NOW)

    assert (report.deleted, report.days, report.cutoff) == (4, 2, dt.datetime(2026, 5, 16, tzinfo=dt.UTC))
    assert sorted(Event.objects.values_list("pk", flat=True)) == sorted(kept)
    day_31, day_400 = (NOW - dt.timedelta(days=31)).date(), (NOW - dt.timedelta(days=400)).date()
    assert counters() == [(day_400, "search", "1", 1), (day_31, "purchase", "2", 1), (day_31, "view", "1", 2)]
    entry = AuditEntry.objects.get()
    assert entry.action == AuditAction.RETENTION and entry.counts["events"] == 4


def test_a_second_run_changes_nothing_and_a_late_import_adds_to_the_counters():
    add(31)
    with retention(30):
        purge_expired_events(NOW)
        assert purge_expired_events(NOW).deleted == 0
        add(31)  # an import of old events after the day was already counted
        purge_expired_events(NOW)
    assert counters() == [((NOW - dt.timedelta(days=31)).date(), "view", "1", 2)]
    assert not Event.objects.exists()


def test_without_aggregation_events_are_just_deleted():
    add(31)
    with retention(30, aggregate=False):
        assert purge_expired_events(NOW).deleted == 1
    assert not DailyEventCount.objects.exists()


def test_retention_off_keeps_everything():
    add(4000)
    with retention(None):
        report = purge_expired_events(NOW)
    assert report.cutoff is None and Event.objects.count() == 1 and not AuditEntry.objects.exists()


def test_a_worker_registers_the_task_without_the_host_naming_the_module():
    """The host's Celery app autodiscovers `<app>.tasks`; ours lives deeper and is found via ready()."""
    code = "from tasks.celery import app; app.loader.import_default_modules(); print(sorted(app.tasks))"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.config.settings"}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "'recommendations.privacy.tasks.purge_expired_events'" in result.stdout


def test_the_task_is_scheduled_daily_and_runs_the_service():
    schedule = PeriodicTask.objects.get(task=purge_task.name)
    assert schedule.enabled and (schedule.crontab.hour, schedule.crontab.minute) == ("3", "30")
    add(10_000)
    with retention(30):
        assert purge_task.apply().get() == {"deleted": 1, "days": 1, "counters": 1}
