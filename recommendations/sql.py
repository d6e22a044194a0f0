"""Helpers for the SQL the app writes by hand: keys from requests as parameters, key lists as
one parameter, the raw psycopg connection under Django's for the bulk paths (COPY, binary
parameters, pipelines), and the stamp of a read (`read_as_of`)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection as default_connection
from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorWrapper
from psycopg.types.datetime import TimestamptzLoader


def key_value(model: type[models.Model], key: Any) -> Any:
    """The key as `model`'s primary key column stores it, or None when it cannot name a row:
    malformed, out of its integer column's range, or text with a NUL character. A key from a
    request goes into SQL as a parameter, and PostgreSQL refuses a whole statement with one
    beyond the column's type ("bigint out of range") or a NUL in text (a text SKU's
    `/similar/AB%0012/` was a 500): it names nothing, like any other unknown key."""
    field = model._meta.pk
    try:
        value = field.get_prep_value(field.to_python(key))
    except (ValueError, TypeError, ValidationError):
        return None
    if isinstance(value, str) and "\x00" in value:
        return None
    column = field
    while column.is_relation:  # a parent link or one-to-one primary key: the key it copies
        column = column.target_field
    low, high = default_connection.ops.integer_field_ranges.get(column.get_internal_type(), (None, None))
    if low is not None and not low <= value <= high:
        return None
    return value


def array_literal(values: Iterable[Any]) -> str:
    """`values` as one PostgreSQL array literal, `{"1","2"}`, for `column = ANY(%s)`.

    psycopg adapts a Python list element by element in Python code: for the keys a request
    sends (a few dozen to a few hundred) that was about 5% of a web worker's CPU
    (docs/benchmarks.md). A string goes through as it is and PostgreSQL casts it to the
    column's array type. Every element is quoted, so any key (digits, UUIDs, text with commas,
    braces or quotes) reads back exactly.
    """
    texts = list(map(str, values))
    if not texts:
        return "{}"
    if '"' not in (plain := "".join(texts)) and "\\" not in plain:  # keys: nothing to escape
        return '{"' + '","'.join(texts) + '"}'
    quoted = ('"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"' for text in texts)
    return "{" + ",".join(quoted) + "}"


def existing_keys(model: type[models.Model], keys: Iterable[Any], *, lock: str = "") -> set[str]:
    """The keys among these that are primary keys of `model`'s rows, as strings (one query).

    `lock` (e.g. "FOR KEY SHARE") locks those rows, in key order, until the transaction ends.
    """
    wanted = {str(key) for key in keys if key is not None}
    if not wanted:
        return set()
    quote = default_connection.ops.quote_name
    pk = quote(model._meta.pk.column)
    order = f" ORDER BY 1 {lock}" if lock else ""
    with default_connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {pk} FROM {quote(model._meta.db_table)} WHERE {pk} = ANY(%s){order}",
            [array_literal(wanted)],
        )
        return {str(key) for (key,) in cursor.fetchall()}


def raw_connection(connection: BaseDatabaseWrapper) -> psycopg.Connection:
    """The psycopg connection under Django's `connection`, checked as Django's own cursors are.

    `ensure_connection()` alone skips the health check (`CONN_HEALTH_CHECKS`) that
    `connection.cursor()` runs once per request: after a database restart, a thread whose
    first statement used the raw connection kept the dropped one and failed every request.
    """
    connection.close_if_health_check_failed()
    connection.ensure_connection()
    return connection.connection


def native_timestamps(cursor: CursorWrapper) -> CursorWrapper:
    """Let this cursor parse `timestamptz` columns with psycopg's C loader.

    Django registers a Python subclass of psycopg's loader that parses each value and then
    stamps it with the connection's time zone; the subclass also keeps psycopg from using its
    C implementation. A served list reads some 40 timestamps (its products, the visitor's
    events): about 4.5 us each in Python against 1 us in C. With `USE_TZ` and the connection
    in UTC, as Django sets it by default, both give the same aware UTC datetimes; in any other
    set-up (naive datetimes, another zone, psycopg2) the cursor is left as it is.
    """
    adapters = getattr(cursor.cursor, "adapters", None)
    if adapters is not None and settings.USE_TZ and cursor.db.timezone_name == "UTC":
        adapters.register_loader("timestamptz", TimestamptzLoader)
    return cursor


def read_as_of(connection: BaseDatabaseWrapper = default_connection) -> dt.datetime:
    """The time to stamp on what a read that starts now will see (a vector's `updated_at`):
    the earlier of now and the start of the oldest other transaction of this database that
    has written and not yet committed. A save in such a transaction is invisible to the read
    but stamps its product after its transaction began, so it is later than the stamp and
    found stale; stamping the read's own time hid it until the next retrain.

    Call it right before the read: under READ COMMITTED every statement after it takes a
    later snapshot. `statement_timestamp()`, not `now()`, so that a caller's outer
    transaction does not date the stamp back to its start; the activity snapshot is cleared
    first, as PostgreSQL keeps one per transaction. Other roles' transactions are seen only
    by a role with the privileges of `pg_read_all_stats`."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT least(statement_timestamp(), min(xact_start)) FROM pg_stat_activity "
            "WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid() AND datname = current_database()"
        )
        return cursor.fetchone()[0]
