"""The one service that stores behaviour events.

`ingest()` validates a batch (see `validation`) and writes it in one transaction; track(),
the host signals and the REST endpoint all call it. Bulk importers and the demo generator
validate their own rows and call `copy_rows()` directly.

Writing: `copy_rows()` looks up which event ids are already stored (one indexed query),
then streams the rest with PostgreSQL COPY straight into the events table, in event-id order.
That is faster than `INSERT ... ON CONFLICT` (measured in `benchmarks/ingest.py`), whose
speculative insertion costs per row. Idempotency: `event_id` is unique. If a concurrent
writer stores one of the same ids after the lookup, the COPY fails on the unique index, its
savepoint is rolled back and the rows go through `insert_rows()`:
`INSERT ... SELECT FROM unnest(...) ON CONFLICT (event_id) DO NOTHING`. So a replayed batch,
even one replayed concurrently, stores each event once; and since every writer inserts in
event-id order, overlapping transactions take their locks in the same order and cannot deadlock.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import psycopg
from django.db import connection, transaction
from django.utils import timezone

from recommendations.events.validation import EventRow, Origin, validate_batch
from recommendations.models.events import Event
from recommendations.privacy.optout import drop_opted_out

logger = logging.getLogger(__name__)

COLUMNS = EventRow._fields


@dataclass(frozen=True)
class IngestResult:
    """How many events arrived and how many were new (the rest were already stored)."""

    received: int
    stored: int

    @property
    def duplicates(self) -> int:
        return self.received - self.stored


def ingest(raw_events: Sequence[Any], origin: Origin | None = None) -> IngestResult:
    """Validate and store a batch in one transaction; raises `EventValidationError` if any event is bad."""
    rows = validate_batch(raw_events, origin)
    received = len(rows)
    # Privacy (recommendations.privacy.optout): nothing is stored for users who opted out of
    # personalisation; their events count as received, not stored.
    rows = drop_opted_out(rows)
    with transaction.atomic():
        stored = copy_rows(rows)
    return IngestResult(received=received, stored=stored)


def _columns() -> list[str]:
    return [Event._meta.get_field(name).column for name in COLUMNS]


@cache
def _insert_sql() -> str:
    """`INSERT ... SELECT FROM unnest(arrays) ON CONFLICT DO NOTHING`: one statement, 12 parameters."""
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = _columns()
    array_types = []
    for name in COLUMNS:
        db_type = Event._meta.get_field(name).db_type(connection)
        # Contexts travel as JSON text and are cast per element.
        array_types.append("text[]" if name == "context" else f"{db_type}[]")
    aliases = [f"c{i}" for i in range(len(COLUMNS))]
    selected = [
        f"{alias}::jsonb" if name == "context" else alias
        for alias, name in zip(aliases, COLUMNS, strict=True)
    ]
    created = connection.ops.quote_name(Event._meta.get_field("created_at").column)
    return (
        f"INSERT INTO {table} ({', '.join(map(connection.ops.quote_name, columns))}, {created}) "
        f"SELECT {', '.join(selected)}, now() "
        f"FROM unnest({', '.join(f'%s::{t}' for t in array_types)}) AS x({', '.join(aliases)}) "
        f"ON CONFLICT ({connection.ops.quote_name(Event._meta.get_field('event_id').column)}) DO NOTHING"
    )


def _raw_connection() -> psycopg.Connection:
    connection.ensure_connection()
    return connection.connection


def insert_rows(rows: Sequence[EventRow]) -> int:
    """Insert rows, skipping event ids that are already stored; returns how many were new.

    Call inside a transaction. Uses a server-side-binding cursor on Django's connection, so
    the 12 arrays travel as binary parameters instead of a long SQL literal.
    """
    if not rows:
        return 0
    ordered = sorted(rows, key=lambda r: r.event_id)
    columns = [list(values) for values in zip(*ordered, strict=True)]
    context_index = COLUMNS.index("context")
    columns[context_index] = [
        json.dumps(c, separators=(",", ":"), default=str) for c in columns[context_index]
    ]
    with psycopg.Cursor(_raw_connection()) as cursor:
        cursor.execute(_insert_sql(), columns)
        return cursor.rowcount


def existing_event_ids(event_ids: Iterable[str]) -> set[str]:
    """The given event ids that are already stored (one indexed query)."""
    ids = list(event_ids)
    if not ids:
        return set()
    table = connection.ops.quote_name(Event._meta.db_table)
    with psycopg.Cursor(_raw_connection()) as cursor:
        cursor.execute(f"SELECT event_id FROM {table} WHERE event_id = ANY(%s::text[])", [ids])
        return {event_id for (event_id,) in cursor}


def copy_rows(rows: Sequence[EventRow]) -> int:
    """Bulk-store rows with COPY, skipping already-stored event ids; returns how many were new.

    Call inside a transaction. Rows already in the table (a re-run import) are filtered out
    first, so the COPY goes straight into the events table. If another writer stores one of
    the same ids in the meantime, the COPY fails on the unique index; the savepoint is rolled
    back and the chunk is written with `insert_rows` instead, which skips conflicts.
    """
    if not rows:
        return 0
    unique = {row.event_id: row for row in rows}
    for event_id in existing_event_ids(unique):
        del unique[event_id]
    if not unique:
        return 0
    table = connection.ops.quote_name(Event._meta.db_table)
    columns = ", ".join(map(connection.ops.quote_name, [*_columns(), "created_at"]))
    try:
        with (
            transaction.atomic(),
            psycopg.Cursor(_raw_connection()) as cursor,
            cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy,
        ):
            created = timezone.now()
            # In event-id order the unique index is filled left to right, not at random pages.
            for row in sorted(unique.values()):
                context = json.dumps(row.context, separators=(",", ":"), default=str)
                copy.write_row((*row[:10], context, row[11], created))
    except psycopg.errors.UniqueViolation:
        logger.info(
            "COPY met event ids stored concurrently; writing %d rows with ON CONFLICT instead", len(unique)
        )
        return insert_rows(list(unique.values()))
    return len(unique)
