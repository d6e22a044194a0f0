"""Retention: behaviour events are kept for `EVENT_RETENTION_DAYS`, then deleted.

A daily beat task (`tasks.purge_expired_events`) calls `purge_expired_events()`. It works one
UTC day at a time, oldest first, each day in its own transaction: with
`EVENT_RETENTION_AGGREGATE` the day's events are first added up into `DailyEventCount`
(per event type, product and store; never per person, and search text is dropped), then
deleted. A run stopped half-way resumes where it stopped; a late import of old events adds
to the existing counters instead of replacing them.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Min
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.models import Event
from recommendations.models.audit import AuditAction, AuditEntry
from recommendations.models.retention import DailyEventCount

logger = logging.getLogger(__name__)

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class RetentionReport:
    """What a purge did; `cutoff` is None when retention is switched off."""

    cutoff: dt.datetime | None
    deleted: int = 0
    days: int = 0
    counters: int = 0


def retention_cutoff(now: dt.datetime | None = None, days: int | None = None) -> dt.datetime | None:
    """Midnight UTC `days` days ago: events before it are expired. Whole days keep counters exact."""
    days = rec_settings.EVENT_RETENTION_DAYS if days is None else days
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int) or days < 1:
        raise ImproperlyConfigured(
            "RECOMMENDATIONS['EVENT_RETENTION_DAYS'] must be a whole number of days >= 1 or None "
            f"(keep events forever), got {days!r}."
        )
    now = now or timezone.now()
    return dt.datetime.combine((now - dt.timedelta(days=days)).astimezone(dt.UTC).date(), dt.time(), dt.UTC)


def purge_expired_events(now: dt.datetime | None = None, *, days: int | None = None) -> RetentionReport:
    """Delete (and first count, if configured) every event older than the retention cutoff."""
    cutoff = retention_cutoff(now, days)
    if cutoff is None:
        logger.info("Event retention is off (EVENT_RETENTION_DAYS is None); nothing deleted")
        return RetentionReport(cutoff=None)
    started = time.monotonic()
    aggregate = rec_settings.EVENT_RETENTION_AGGREGATE
    deleted = counters = days_done = 0
    expired = Event.objects.filter(timestamp__lt=cutoff)
    while (oldest := expired.aggregate(oldest=Min("timestamp"))["oldest"]) is not None:
        day_start = dt.datetime.combine(oldest.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        day_end = min(day_start + ONE_DAY, cutoff)
        with transaction.atomic():
            if aggregate:
                counters += _add_to_daily_counts(day_start, day_end)
            deleted += Event.objects.filter(timestamp__gte=day_start, timestamp__lt=day_end).delete()[0]
        days_done += 1
    if deleted:
        AuditEntry.objects.create(
            action=AuditAction.RETENTION,
            source="retention",
            counts={"events": deleted, "days": days_done, "daily_counts": counters},
        )
    logger.info(
        "Retention: deleted %d events from %d day(s) before %s (%d daily counters written) in %.1fs",
        deleted,
        days_done,
        cutoff.date(),
        counters,
        time.monotonic() - started,
    )
    return RetentionReport(cutoff=cutoff, deleted=deleted, days=days_done, counters=counters)


def _add_to_daily_counts(day_start: dt.datetime, day_end: dt.datetime) -> int:
    """Add one day's events to the counters in one statement; returns the counter rows touched."""
    q = connection.ops.quote_name

    def columns(model: type, *names: str) -> str:
        return ", ".join(q(model._meta.get_field(name).column) for name in names)

    keys = ("event_type", "product_id", "store_id")
    counters, count = q(DailyEventCount._meta.db_table), columns(DailyEventCount, "count")
    timestamp = columns(Event, "timestamp")
    sql = (
        f"INSERT INTO {counters} ({columns(DailyEventCount, 'day', *keys)}, {count}) "
        f"SELECT %s::date, {columns(Event, *keys)}, count(*) FROM {q(Event._meta.db_table)} "
        f"WHERE {timestamp} >= %s AND {timestamp} < %s GROUP BY {columns(Event, *keys)} "
        f"ON CONFLICT ({columns(DailyEventCount, 'day', *keys)}) "
        f"DO UPDATE SET {count} = {counters}.{count} + EXCLUDED.{count}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [day_start.date(), day_start, day_end])
        return cursor.rowcount
