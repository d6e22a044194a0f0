"""Retention: behaviour events are kept for `EVENT_RETENTION_DAYS`, then deleted.

A daily beat task (`recommendations.tasks.purge_expired_events`) calls `purge_expired_events()`. With
`EVENT_RETENTION_AGGREGATE` expired events are first added up into `DailyEventCount` (per UTC
day, event type, product and store; never per person, and search text is dropped).

The events table is partitioned by month (`events.partitions`), so most events go a whole
month at a time: a month partition that ends before the cutoff is detached (a short
transaction), then in one transaction its days are counted, its event ids are released from
the key table and it is dropped, which is far cheaper than deleting its rows. What is left
past the cutoff (the month the cutoff falls in, the DEFAULT partition, a partition whose lock
was not granted in time) is deleted one UTC day at a time, oldest first, each day counted and
deleted in its own transaction. A run stopped half-way resumes where it stopped (a detached
month left behind is dropped by the next run); a late import of old events adds to the
existing counters instead of replacing them.
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
from recommendations.events.partitions import (
    detach_partition,
    detached_month_tables,
    month_partitions,
    next_month,
)
from recommendations.models import Event, EventKey
from recommendations.models.audit import AuditAction, AuditEntry
from recommendations.models.retention import DailyEventCount

logger = logging.getLogger(__name__)

ONE_DAY = dt.timedelta(days=1)


@dataclass(frozen=True)
class RetentionReport:
    """What a purge did; `cutoff` is None when retention is switched off.

    `deleted` and `days` count the events and UTC days of dropped partitions too;
    `partitions` is how many month partitions were dropped.
    """

    cutoff: dt.datetime | None
    deleted: int = 0
    days: int = 0
    counters: int = 0
    partitions: int = 0


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
    deleted, days_done, counters, partitions = _drop_expired_partitions(cutoff, aggregate)
    expired = Event.objects.filter(timestamp__lt=cutoff)
    while (oldest := expired.aggregate(oldest=Min("timestamp"))["oldest"]) is not None:
        day_start = dt.datetime.combine(oldest.astimezone(dt.UTC).date(), dt.time(), dt.UTC)
        day_end = min(day_start + ONE_DAY, cutoff)
        with transaction.atomic():
            if aggregate:
                counters += _add_to_daily_counts(Event._meta.db_table, day_start, day_end)
            # The events table's delete trigger releases the deleted events' ids.
            deleted += Event.objects.filter(timestamp__gte=day_start, timestamp__lt=day_end).delete()[0]
        days_done += 1
    if deleted:
        AuditEntry.objects.create(
            action=AuditAction.RETENTION,
            source="retention",
            counts={"events": deleted, "days": days_done, "daily_counts": counters, "partitions": partitions},
        )
    logger.info(
        "Retention: deleted %d events from %d day(s) before %s (%d month partitions dropped, "
        "%d daily counters written) in %.1fs",
        deleted,
        days_done,
        cutoff.date(),
        partitions,
        counters,
        time.monotonic() - started,
    )
    return RetentionReport(
        cutoff=cutoff, deleted=deleted, days=days_done, counters=counters, partitions=partitions
    )


def _drop_expired_partitions(cutoff: dt.datetime, aggregate: bool) -> tuple[int, int, int, int]:
    """Detach every month partition that ends by the cutoff, then count and drop each detached
    month; returns (events, days, counters, partitions). A partition whose lock is not granted
    in time stays attached, and the day-by-day deletes that follow take its rows instead."""
    expired = [month for month in month_partitions() if next_month(month) <= cutoff.date()]
    for month in sorted(expired):
        detach_partition(month)
    events = days = counters = dropped = 0
    # Also months a stopped run detached but did not drop; never a month not yet expired.
    for month, table in sorted(detached_month_tables().items()):
        if next_month(month) > cutoff.date():
            continue
        q = connection.ops.quote_name
        timestamp, event_id = q(Event._meta.get_field("timestamp").column), q("event_id")
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                f"SELECT count(*), count(DISTINCT ({timestamp} AT TIME ZONE 'UTC')::date) FROM {q(table)}"
            )
            month_events, month_days = cursor.fetchone()
            if aggregate and month_events:
                counters += _add_to_daily_counts(table)
            cursor.execute(
                f"DELETE FROM {q(EventKey._meta.db_table)} k USING {q(table)} e "
                f"WHERE k.{event_id} = e.{event_id}"
            )
            cursor.execute(f"DROP TABLE {q(table)}")
        events, days, dropped = events + month_events, days + month_days, dropped + 1
        logger.info("Retention: dropped event partition %s (%d events)", table, month_events)
    return events, days, counters, dropped


def _add_to_daily_counts(
    table: str, day_start: dt.datetime | None = None, day_end: dt.datetime | None = None
) -> int:
    """Add the events of `table` (between the bounds, if given) to the counters of their UTC days
    in one statement; returns the counter rows touched."""
    q = connection.ops.quote_name

    def columns(model: type, *names: str) -> str:
        return ", ".join(q(model._meta.get_field(name).column) for name in names)

    keys = ("event_type", "product_id", "store_id")
    counters, count = q(DailyEventCount._meta.db_table), columns(DailyEventCount, "count")
    timestamp = columns(Event, "timestamp")
    day = f"({timestamp} AT TIME ZONE 'UTC')::date"
    where, params = "", []
    if day_start is not None and day_end is not None:
        where, params = f"WHERE {timestamp} >= %s AND {timestamp} < %s ", [day_start, day_end]
    sql = (
        f"INSERT INTO {counters} ({columns(DailyEventCount, 'day', *keys)}, {count}) "
        f"SELECT {day}, {columns(Event, *keys)}, count(*) FROM {q(table)} "
        f"{where}GROUP BY {day}, {columns(Event, *keys)} "
        f"ON CONFLICT ({columns(DailyEventCount, 'day', *keys)}) "
        f"DO UPDATE SET {count} = {counters}.{count} + EXCLUDED.{count}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount
