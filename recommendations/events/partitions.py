"""Monthly partitions of the events table, made before the events that need them arrive.

The events table is partitioned by range of `timestamp` (PostgreSQL declarative partitioning),
one partition per UTC month named `<table>_pYYYY_MM`, plus a DEFAULT partition that takes any
event no month partition covers (a far-future clock, old events whose month was not prepared),
so no event is refused or lost for its timestamp. Retention then drops whole expired months
instead of deleting their rows one by one (`privacy.retention`). Event ids stay unique through
`models.EventKey`, which explains why a unique index on the events table cannot do it.

Partitions are made:

- for the current month and the next `MONTHS_AHEAD` by the daily maintenance task
  (`recommendations.tasks.purge_expired_events`), so live traffic never lands in DEFAULT;
- by the importers, for the months of each batch, before the batch is written, so a
  dataset that spans years fills its own months rather than DEFAULT;
- by the migration that partitioned the table, for every month that held events.

A partition is created as a plain table and then attached: `ATTACH PARTITION` takes only a
SHARE UPDATE EXCLUSIVE lock on the events table, so reads and writes go on, where `CREATE TABLE
... PARTITION OF` would block them all. Rows of that month already in DEFAULT are moved into the
new table first (PostgreSQL refuses the attach otherwise). Attaching still locks DEFAULT
exclusively for a moment, so each partition is made in its own short transaction under a lock
timeout; one that cannot be made now is logged and left for the next run, and its events keep
going to DEFAULT meanwhile.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from operator import attrgetter

from django.db import OperationalError, ProgrammingError, connection, transaction
from django.db.backends.utils import CursorWrapper
from django.utils import timezone
from psycopg.errors import DuplicateTable, LockNotAvailable

from recommendations.locks import transaction_lock
from recommendations.models.events import Event

logger = logging.getLogger(__name__)

#: Months prepared after the current one, so a missed daily run or two changes nothing.
MONTHS_AHEAD = 3
#: How long partition DDL waits for a lock before giving up until the next run. While it
#: waits, new queries on the table queue behind it, so this is kept short.
LOCK_TIMEOUT = "3s"
_ZONE = attrgetter("tzinfo")
_YEAR_MONTH = attrgetter("year", "month")


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _table() -> str:
    return Event._meta.db_table


def month_of(moment: dt.datetime | dt.date) -> dt.date:
    """The first day of the UTC month of `moment` (a date is taken as is)."""
    if isinstance(moment, dt.datetime):
        moment = moment.astimezone(dt.UTC).date() if timezone.is_aware(moment) else moment.date()
    return moment.replace(day=1)


def next_month(month: dt.date) -> dt.date:
    return dt.date(month.year + month.month // 12, month.month % 12 + 1, 1)


def month_bounds(month: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of a month partition, in UTC."""
    start = dt.datetime.combine(month, dt.time(), dt.UTC)
    return start, dt.datetime.combine(next_month(month), dt.time(), dt.UTC)


def partition_name(month: dt.date) -> str:
    return f"{_table()}_p{month.year:04d}_{month.month:02d}"


def _month_from_name(name: str) -> dt.date | None:
    match = re.fullmatch(re.escape(_table()) + r"_p(\d{4})_(\d{2})", name)
    if match is None or not 1 <= int(match[2]) <= 12:
        return None
    return dt.date(int(match[1]), int(match[2]), 1)


def is_partitioned() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT FROM pg_partitioned_table WHERE partrelid = %s::regclass)", [_table()]
        )
        return cursor.fetchone()[0]


def default_partition() -> str | None:
    """Name of the DEFAULT partition, None if there is none."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partdefid "
            "WHERE p.partrelid = %s::regclass",
            [_table()],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def month_partitions() -> dict[dt.date, str]:
    """Attached month partitions by month (other partitions, such as DEFAULT, are left out)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = %s::regclass",
            [_table()],
        )
        names = [name for (name,) in cursor.fetchall()]
    return {month: name for name in names if (month := _month_from_name(name)) is not None}


def detached_month_tables() -> dict[dt.date, str]:
    """Month tables that are no longer attached: left by a retention run stopped between
    detaching a partition and dropping it (see `privacy.retention`)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
            "AND relnamespace = (SELECT relnamespace FROM pg_class WHERE oid = %s::regclass) "
            "AND starts_with(relname, %s)",
            [_table(), f"{_table()}_p"],
        )
        names = [name for (name,) in cursor.fetchall()]
    return {month: name for name in names if (month := _month_from_name(name)) is not None}


def months_of(timestamps: Iterable[dt.datetime]) -> set[dt.date]:
    """The months (first days, UTC) that these timestamps fall in.

    Validated rows are in UTC already: their (year, month) pairs are read in one C pass
    (`attrgetter`), which for an import batch of 50,000 costs a fifth of a loop per row;
    other zones are converted first.
    """
    moments = timestamps if isinstance(timestamps, list | tuple) else list(timestamps)
    if set(map(_ZONE, moments)) - {dt.UTC}:
        moments = [m if m.tzinfo is dt.UTC else m.astimezone(dt.UTC) for m in moments]
    return {dt.date(year, month, 1) for year, month in set(map(_YEAR_MONTH, moments))}


@contextmanager
def _lock_timeout(cursor: CursorWrapper) -> Iterator[None]:
    """Bound lock waits for the statements inside, then restore the caller's setting: the
    transaction may be a caller's (a test's), where `SET LOCAL` would outlive this block."""
    # One round trip: the materialized CTE reads the setting before the outer query sets it.
    cursor.execute(
        "WITH previous AS MATERIALIZED (SELECT current_setting('lock_timeout') AS value) "
        "SELECT value, set_config('lock_timeout', %s, true) FROM previous",
        [LOCK_TIMEOUT],
    )
    previous = cursor.fetchone()[0]
    yield
    cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])


def ensure_partitions(months: Iterable[dt.date]) -> list[dt.date]:
    """Create the month partitions that do not exist yet; returns the months created.

    A month that cannot be created now (a lock held too long) is skipped with a log line: its
    events go to DEFAULT until a later run makes it. Two runs needing the same month take
    turns: the second finds it made by the first.
    """
    missing = sorted({month_of(m) for m in months} - month_partitions().keys())
    if not missing:
        return []
    # Looked up once for all the months: an import of a dataset that spans years makes dozens.
    default = default_partition()
    with connection.cursor() as cursor:
        columns = _columns(cursor)
    created = [month for month in missing if _create_partition(month, default, columns)]
    if created:
        logger.info("Created event partitions for %s", ", ".join(f"{m:%Y-%m}" for m in created))
    return created


def ensure_partitions_for(timestamps: Iterable[dt.datetime]) -> list[dt.date]:
    """Create the month partitions these events need before they are written."""
    return ensure_partitions(months_of(timestamps))


def ensure_upcoming_partitions(now: dt.datetime | None = None, ahead: int = MONTHS_AHEAD) -> list[dt.date]:
    """Create the current month's partition and the next `ahead` months'."""
    months = [month_of(now or timezone.now())]
    for _ in range(ahead):
        months.append(next_month(months[-1]))
    return ensure_partitions(months)


def months_between(start: dt.datetime | dt.date, end: dt.datetime | dt.date) -> list[dt.date]:
    """Every month from `start`'s to `end`'s, both included (UTC)."""
    months, last = [month_of(start)], month_of(end)
    while months[-1] < last:
        months.append(next_month(months[-1]))
    return months


def _columns(cursor: CursorWrapper) -> str:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped "
        "ORDER BY attnum",
        [_table()],
    )
    return ", ".join(_quote(name) for (name,) in cursor.fetchall())


def _create_partition(month: dt.date, default: str | None, columns: str) -> bool:
    """Create, fill from DEFAULT (`default`, its `columns`) and attach one month's partition,
    in one transaction."""
    name, parent = partition_name(month), _quote(_table())
    start, end = month_bounds(month)
    timestamp = _quote(Event._meta.get_field("timestamp").column)
    try:
        with transaction.atomic(), connection.cursor() as cursor, _lock_timeout(cursor):
            if not _claim(cursor, name):
                return False
            cursor.execute(f"CREATE TABLE {_quote(name)} (LIKE {parent})")
            if default is not None:
                # Named directly, DEFAULT's rows move without firing the events table's delete
                # trigger: their ids stay claimed, as the events stay stored.
                cursor.execute(
                    f"WITH moved AS (DELETE FROM {_quote(default)} "
                    f"WHERE {timestamp} >= %s AND {timestamp} < %s RETURNING {columns}) "
                    f"INSERT INTO {_quote(name)} ({columns}) SELECT {columns} FROM moved",
                    [start, end],
                )
                if cursor.rowcount:
                    logger.info(
                        "Moved %d events of %s from %s into %s",
                        cursor.rowcount,
                        f"{month:%Y-%m}",
                        default,
                        name,
                    )
            # DDL takes no parameters; the bounds are formatted from datetimes, never from input.
            cursor.execute(
                f"ALTER TABLE {parent} ATTACH PARTITION {_quote(name)} "
                f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
            )
    except (OperationalError, ProgrammingError) as exc:
        # A lock not granted in time, or a table made outside this module first.
        if not isinstance(exc.__cause__, LockNotAvailable | DuplicateTable):
            raise
        logger.warning(
            "Event partition %s not created now (%s); its events go to DEFAULT meanwhile", name, exc
        )
        return False
    return True


def _claim(cursor: CursorWrapper, name: str) -> bool:
    """Take the partition's turn in the caller's transaction; False when a concurrent run (two
    imports needing the same month) made it while this one waited. Without turns the second
    `CREATE TABLE` failed on the first's uncommitted one (a unique violation in `pg_type`).
    The turn is polled for (`transaction_lock`), so the lock timeout bounds only the DDL."""
    transaction_lock(f"recommendations.events.partition.{name}")
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [_quote(name)])
    if cursor.fetchone()[0]:
        logger.info("Event partition %s was made by a concurrent run meanwhile", name)
        return False
    return True


def detach_partition(month: dt.date) -> bool:
    """Detach a month's partition in a short transaction; False if its lock was not granted in time.

    DETACH takes an ACCESS EXCLUSIVE lock on the events table (the non-blocking CONCURRENTLY
    form cannot run in a transaction and needs PostgreSQL 14), held only for the catalogue change.
    """
    name = partition_name(month)
    try:
        with transaction.atomic(), connection.cursor() as cursor, _lock_timeout(cursor):
            cursor.execute(f"ALTER TABLE {_quote(_table())} DETACH PARTITION {_quote(name)}")
    except OperationalError as exc:
        if not isinstance(exc.__cause__, LockNotAvailable):
            raise
        logger.warning(
            "Event partition %s not detached now (%s); retention deletes its rows instead", name, exc
        )
        return False
    return True
