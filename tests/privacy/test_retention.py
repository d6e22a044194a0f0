"""Retention: old events are counted per day, then deleted, by a scheduled Celery task."""

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections
from django.test import override_settings
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from recommendations.events import partitions
from recommendations.models import AuditAction, AuditEntry, DailyEventCount, Event, EventKey
from recommendations.privacy.retention import purge_expired_events, retention_cutoff
from recommendations.tasks import purge_expired_events as purge_task

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
    """The host's Celery app autodiscovers `<app>.tasks`, which defines every task of the app."""
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
    assert "partitions" in schedule.description
    add(10_000)
    with retention(30):
        assert purge_task.apply().get() == {
            "deleted": 1,
            "days": 1,
            "counters": 1,
            "partitions_created": 0,  # the migration made this month's and the next three
            "partitions_dropped": 0,
        }


def test_the_task_makes_the_coming_months_partitions_even_with_retention_off():
    month = partitions.month_of(timezone.now())
    last = partitions.months_between(month, month + dt.timedelta(days=95))[3]
    with connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE {partitions.partition_name(last)}")
    with retention(None):
        assert purge_task.apply().get()["partitions_created"] == 1
    assert last in partitions.month_partitions()


def in_month(year, month, day, hour=12):
    return dt.datetime(year, month, day, hour, tzinfo=dt.UTC)


def add_at(when, product="1", event_id=None):
    event = Event.objects.create(event_type="view", product_id=product, session_id="s1", timestamp=when)
    if event_id:
        Event.objects.filter(pk=event.pk).update(event_id=event_id)
    return event


def test_an_expired_month_partition_is_counted_then_dropped_and_a_partly_expired_one_loses_rows():
    # NOW is 2026-06-15, so 30 days keep 2026-05-16 onwards: March and April expire whole,
    # May only up to the 15th.
    partitions.ensure_partitions([dt.date(2026, 3, 1), dt.date(2026, 4, 1), dt.date(2026, 5, 1)])
    add_at(in_month(2026, 3, 2))
    add_at(in_month(2026, 3, 2, hour=23), "2")
    add_at(in_month(2026, 4, 30))
    add_at(in_month(2026, 5, 10))
    kept = add_at(in_month(2026, 5, 20))
    add_at(in_month(2020, 1, 1))  # in DEFAULT: no partition for that month

    with retention(30):
        report = purge_expired_events(NOW)

    assert (report.deleted, report.days, report.partitions) == (5, 4, 2)
    assert list(Event.objects.values_list("pk", flat=True)) == [kept.pk]
    assert list(EventKey.objects.values_list("event_id", flat=True)) == [kept.event_id]
    months = partitions.month_partitions()
    assert dt.date(2026, 3, 1) not in months and dt.date(2026, 4, 1) not in months
    assert dt.date(2026, 5, 1) in months
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass(%s)", [partitions.partition_name(dt.date(2026, 3, 1))])
        assert cursor.fetchone()[0] is None  # dropped, not just detached
    assert counters() == [
        (dt.date(2020, 1, 1), "view", "1", 1),
        (dt.date(2026, 3, 2), "view", "1", 1),
        (dt.date(2026, 3, 2), "view", "2", 1),
        (dt.date(2026, 4, 30), "view", "1", 1),
        (dt.date(2026, 5, 10), "view", "1", 1),
    ]
    assert AuditEntry.objects.get().counts == {"events": 5, "days": 4, "daily_counts": 5, "partitions": 2}


def test_without_aggregation_a_partition_is_dropped_uncounted():
    partitions.ensure_partitions([dt.date(2026, 3, 1)])
    add_at(in_month(2026, 3, 2))
    with retention(30, aggregate=False):
        report = purge_expired_events(NOW)
    assert (report.deleted, report.partitions, report.counters) == (1, 1, 0)
    assert not DailyEventCount.objects.exists() and not Event.objects.exists()


def test_a_month_left_detached_by_a_stopped_run_is_dropped_by_the_next():
    partitions.ensure_partitions([dt.date(2026, 2, 1)])
    add_at(in_month(2026, 2, 14))
    assert partitions.detach_partition(dt.date(2026, 2, 1))  # then the run stopped
    assert not Event.objects.exists()

    with retention(30):
        report = purge_expired_events(NOW)

    assert (report.deleted, report.partitions) == (1, 1)
    assert counters() == [(dt.date(2026, 2, 14), "view", "1", 1)]
    assert partitions.detached_month_tables() == {} and not EventKey.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_partition_whose_lock_is_not_granted_has_its_rows_deleted_instead(monkeypatch):
    """A long reader holds the events table: DETACH gives up after the lock timeout, and the
    day-by-day deletes, which need no exclusive lock, still expire every event on time."""
    monkeypatch.setattr(partitions, "LOCK_TIMEOUT", "200ms")
    partitions.ensure_partitions([dt.date(2026, 3, 1)])
    add_at(in_month(2026, 3, 2))
    reader = connections.create_connection("default")
    try:
        with reader.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute(f"SELECT count(*) FROM {Event._meta.db_table}")
            with retention(30):
                report = purge_expired_events(NOW)
            cursor.execute("ROLLBACK")
    finally:
        reader.close()
    assert (report.deleted, report.partitions) == (1, 0)
    assert not Event.objects.exists() and not EventKey.objects.exists()
    assert dt.date(2026, 3, 1) in partitions.month_partitions()
    with retention(30):
        assert purge_expired_events(NOW).partitions == 1  # the emptied month goes next time
