"""The one service that stores behaviour events.

`ingest()` validates a batch (see `validation`) and writes it with one statement; track(),
the host signals and the REST endpoint all call it. Bulk importers and the demo generator
validate their own rows and call `copy_rows()` directly.

Two writers, both idempotent and both in event-id order, so that overlapping writers take
their index locks in the same order and cannot deadlock. The events table is partitioned by
month (`partitions`), so event ids are kept unique by `EventKey` (its docstring says why): a
writer claims each id there in the same statement or transaction as the event.

- `insert_rows()`: one statement, the rows as one JSON parameter: `WITH claimed AS (INSERT
  INTO <keys> SELECT event_id FROM jsonb_populate_recordset(rows) ORDER BY event_id ON
  CONFLICT DO NOTHING RETURNING event_id) INSERT INTO <events> SELECT ... JOIN claimed`. One
  round trip, so it is all or nothing even outside a transaction, and concurrent replays wait
  on the same key and store each event once. For a REST batch of 500 it is as fast as an id
  lookup plus COPY, which needs three more round trips (lookup, savepoint, release).
- `copy_rows()`: for bulk writes. Looks up which event ids are already stored (often only a
  range probe, see `existing_event_ids`), then streams the ids of the rest into the key table
  and the rows into the events table with binary COPY: speculative insertion (`ON CONFLICT`)
  and text parsing both cost more per row than the whole COPY (measured in
  `benchmarks/ingest.py`). If a concurrent writer stores one of the same ids after the
  lookup, the key COPY fails on the key table's primary key, its savepoint is rolled back and
  the rows go through `insert_rows()`.

Events have no foreign key to the users (`Event.user`), so both writers lock the users of
their batch `FOR KEY SHARE` in the transaction that writes the events, with one set-based
statement (`insert_rows`: inside its own statement), as a foreign key would row by row.
Erasure (`privacy.erasure.forget_user`) locks the person's row `FOR UPDATE`: a writer that
comes first makes the erasure wait until its events are committed, and the erasure deletes
them; a writer that comes second waits for the erasure and, if the user was deleted, stores
nothing of theirs (those rows count as not stored). Otherwise a batch written while a user's
deletion was still uncommitted left events of a user who no longer exists.

Contexts are encoded with orjson (about 20x faster than `json.dumps` on small dicts); one
context object shared by many rows (an importer's `{"source": ...}`) is encoded once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache, partial
from itertools import repeat
from operator import itemgetter
from typing import Any

import orjson
import psycopg
from django.db import connection, transaction
from django.db.models import Model
from django.utils import timezone
from psycopg.adapt import Dumper
from psycopg.copy import QueuedLibpqWriter

from recommendations.events.bots import is_bot_agent
from recommendations.events.ids import EVENT_ID_LINES_PATTERN
from recommendations.events.rows import EventRow
from recommendations.events.validation import Origin, validate_batch
from recommendations.marketing.caps import add_viewers, first_views
from recommendations.models.events import Event, EventKey, EventType
from recommendations.privacy.optout import drop_opted_out
from recommendations.sql import existing_keys, raw_connection

logger = logging.getLogger(__name__)

COLUMNS = EventRow._fields
# copy_rows looks up every id of a batch only when this many of them, spread over the batch,
# find some already stored (see `_stored_among`).
PROBE_SAMPLE = 256
CONTEXT = COLUMNS.index("context")
USER_ID = itemgetter(COLUMNS.index("user_id"))


@dataclass(frozen=True)
class IngestResult:
    """How many events arrived, how many were new, and how many were dropped unstored
    because their user opted out of personalisation or they came from a crawler; the rest were
    duplicates (or, rarely, of a user deleted while the batch was written)."""

    received: int
    stored: int
    opted_out: int = 0
    bots: int = 0

    @property
    def duplicates(self) -> int:
        """Events whose id was already stored (or repeated within the batch)."""
        return self.received - self.opted_out - self.bots - self.stored


def ingest(raw_events: Sequence[Any], origin: Origin | None = None) -> IngestResult:
    """Validate and store a batch, all or nothing; raises `EventValidationError` if any event is bad."""
    rows = validate_batch(raw_events, origin)
    received = len(rows)
    # Privacy (recommendations.privacy.optout): nothing is stored for users who opted out of
    # personalisation; their events count as received and opted out, not as duplicates.
    rows = drop_opted_out(rows)
    opted_out = received - len(rows)
    # A crawler's events (`events.bots`) are no shopper's behaviour, and trending, pairs and
    # the analytics read events as they are stored.
    rows = _without_crawlers(rows)
    # Impression caps count visitors: who views a campaign for the first time is known only
    # before their view is stored, and their cached count follows once it is committed.
    new_viewers = first_views(rows)
    # One statement: atomic by itself, and part of the caller's transaction when there is one.
    stored = insert_rows(rows)
    if new_viewers:
        transaction.on_commit(partial(add_viewers, new_viewers))
    return IngestResult(
        received=received, stored=stored, opted_out=opted_out, bots=received - opted_out - len(rows)
    )


def _without_crawlers(rows: list[EventRow]) -> list[EventRow]:
    """The rows whose user agent (`context["user_agent"]`) is not a crawler's; each agent is
    matched once (a request's batch has one). A user agent is only a guess: the events of a
    signed-in user and purchases (which the server records) are kept whatever it says, so a
    shopper whose phone's name looks like a crawler's loses no order."""
    verdicts: dict[str, bool] = {}
    kept = []
    for row in rows:
        agent = row.context.get("user_agent") if row.context else None
        if agent and row.user_id is None and row.event_type != EventType.PURCHASE:
            if agent not in verdicts:
                verdicts[agent] = is_bot_agent(agent)
            if verdicts[agent]:
                continue
        kept.append(row)
    return kept


def encode_json(value: Any) -> bytes:
    """Compact JSON bytes; values JSON lacks (dates, decimals) become strings, dates in ISO 8601."""
    try:
        return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    except TypeError:  # integers beyond 64 bits, which orjson refuses and json writes
        return json.dumps(value, separators=(",", ":"), default=_as_text).encode()


def _as_text(value: Any) -> str:
    """What orjson writes for a date or time (ISO 8601), and str() of anything else."""
    return value.isoformat() if isinstance(value, dt.date | dt.time) else str(value)


def _quote(name: str) -> str:
    return connection.ops.quote_name(name)


def _columns() -> list[str]:
    return [Event._meta.get_field(name).column for name in COLUMNS]


@cache
def _insert_sql() -> str:
    """Claim the ids (`ON CONFLICT DO NOTHING RETURNING`), insert the claimed rows; one parameter.

    The rows travel as one JSON array of objects keyed by column: encoded by orjson in one C
    call and parsed by the server in C, where 12 array parameters cost a Python loop per value
    on each side. Each value is read with its column's input function (text to timestamptz,
    numeric, ...), and a context stays a JSON object on its way into the jsonb column.
    """
    table, keys = _quote(Event._meta.db_table), _quote(EventKey._meta.db_table)
    names = list(map(_quote, _columns()))
    event_id = _quote(Event._meta.get_field("event_id").column)
    user_id = _quote(Event._meta.get_field("user").column)
    created = _quote(Event._meta.get_field("created_at").column)
    users = _users_model()
    user_pk = _quote(users._meta.pk.column)
    return (
        f"WITH batch AS (SELECT {', '.join(names)} FROM jsonb_populate_recordset(NULL::{table}, %s::jsonb)), "
        # The batch's users, locked as `lock_users` does (an array, so that they are looked up
        # by the primary key's index); a user deleted meanwhile is not found.
        f"live_users AS (SELECT u.{user_pk} FROM {_quote(users._meta.db_table)} u "
        f"WHERE u.{user_pk} = ANY(ARRAY(SELECT DISTINCT {user_id} FROM batch)) "
        "ORDER BY 1 FOR KEY SHARE OF u), "
        f"kept AS (SELECT * FROM batch WHERE {user_id} IS NULL "
        f"OR {user_id} IN (SELECT {user_pk} FROM live_users)), "
        f"claimed AS (INSERT INTO {keys} (event_id) SELECT {event_id} FROM kept ORDER BY 1 "
        "ON CONFLICT DO NOTHING RETURNING event_id) "
        f"INSERT INTO {table} ({', '.join(names)}, {created}) "
        f"SELECT {', '.join(f'b.{name}' for name in names)}, now() "
        f"FROM kept b JOIN claimed c ON c.event_id = b.{event_id}"
    )


def _users_model() -> type[Model]:
    return Event._meta.get_field("user").related_model


def lock_users(rows: Sequence[EventRow]) -> list[EventRow]:
    """The rows whose user exists (rows without one are kept), with those users' rows locked
    `FOR KEY SHARE` until the transaction ends (see the module's docstring); one statement."""
    users = set(map(USER_ID, rows))
    users.discard(None)
    if not users:
        return list(rows)
    found = existing_keys(_users_model(), users, lock="FOR KEY SHARE")
    if len(found) == len(users):
        return list(rows)
    return [row for row in rows if row.user_id is None or str(row.user_id) in found]


def insert_rows(rows: Sequence[EventRow]) -> int:
    """Insert rows with one statement, skipping event ids that are already stored; returns how many were new.

    Rows repeating an event id within `rows` are stored once (the last one). Rows of a user
    deleted meanwhile are not stored (see the module's docstring).
    """
    if not rows:
        return 0
    columns = _columns()
    unique = {row[0]: dict(zip(columns, row, strict=True)) for row in rows}
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(_insert_sql(), [encode_json(list(unique.values())).decode()])
        return cursor.rowcount


def existing_event_ids(event_ids: Iterable[str]) -> set[str]:
    """The given event ids that are already stored (claimed in the key table).

    First a probe of the range between the smallest and largest id: one index descent, and
    when nothing is stored there (a first import of a source with ordered, namespaced ids such
    as `amazon-beauty:...`) that is all. Otherwise one exact `= ANY(ids)` lookup. Valid ids
    (`EVENT_ID_PATTERN`) travel as one line-separated text that the server splits: joined in
    C, where psycopg dumps a binary array in a Python loop per value (6 against 25-33 ms of
    client CPU for 50,000 ids); any other id as a binary array (never quoted or escaped).
    """
    ids = set(event_ids)
    if not ids:
        return set()
    table = _quote(EventKey._meta.db_table)
    column = _quote(EventKey._meta.get_field("event_id").column)
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT FROM {table} WHERE {column} BETWEEN %s AND %s)", [min(ids), max(ids)]
        )
        if not cursor.fetchone()[0]:
            return set()
        lines = "\n".join(ids) + "\n"
        if EVENT_ID_LINES_PATTERN.fullmatch(lines):
            wanted, parameter = "string_to_array(rtrim(%s, E'\\n'), E'\\n')", lines
        else:
            wanted, parameter = "%b::text[]", list(ids)
        cursor.execute(f"SELECT {column} FROM {table} WHERE {column} = ANY({wanted})", [parameter])
        return {event_id for (event_id,) in cursor.fetchall()}


class _EncodedJsonbDumper(Dumper):
    """Writes `encode_json()` bytes as binary jsonb (a version byte, then the JSON text)."""

    format = psycopg.pq.Format.BINARY
    oid = psycopg.postgres.types["jsonb"].oid

    def dump(self, obj: bytes) -> bytes:
        return b"\x01" + obj


@cache
def _copy_types() -> tuple[int, ...]:
    """Type oids of the COPY columns, as binary COPY needs them (one catalogue query per process)."""
    columns = [*_columns(), Event._meta.get_field("created_at").column]
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            [_quote(Event._meta.db_table)],
        )
        oids = dict(cursor.fetchall())
    return tuple(oids[column] for column in columns)


def _stored_among(ordered: list[str]) -> set[str]:
    """The stored ids among these (sorted) ones, or none found by a sample of them.

    Ids derived from content hashes (the generic importer's) spread over the whole key range,
    so `existing_event_ids`' range probe finds other ids there after the first batch, and an
    exact lookup of 50,000 ids would run for every batch of a first import. A sample of
    `PROBE_SAMPLE` ids spread over the batch is looked up first: when none of them is stored,
    neither (almost surely) is the rest, and the key COPY itself checks it, since a stored id
    makes it fail and the batch goes through `insert_rows` (see `copy_rows`). A re-run, whose
    ids are all stored, finds them in the sample and looks them all up.
    """
    if len(ordered) > 4 * PROBE_SAMPLE:
        sample = ordered[:: len(ordered) // PROBE_SAMPLE]
        if not existing_event_ids(sample):
            return set()
    return existing_event_ids(ordered)


def _encoded_contexts(contexts: Sequence[dict[str, Any]]) -> list[bytes]:
    """Each context as `encode_json` bytes; one object shared by many rows (an importer's
    `{"source": ...}`) is encoded once, and every empty one is `{}`."""
    if not any(contexts):
        return [b"{}"] * len(contexts)
    distinct = dict(zip(map(id, contexts), contexts, strict=True))
    encoded = {key: encode_json(context) if context else b"{}" for key, context in distinct.items()}
    return list(map(encoded.__getitem__, map(id, contexts)))


def copy_rows(rows: Sequence[EventRow], *, while_copying: Callable[[], None] | None = None) -> int:
    """Bulk-store rows with binary COPY, skipping already-stored event ids; returns how many were new.

    Call inside a transaction, after `partitions.ensure_partitions_for()` for rows of months
    that may have no partition yet (they would land in DEFAULT). Rows already stored (a re-run
    import) are filtered out first (`_stored_among`), so both COPYs go straight into their
    tables: the ids into the key table, then the rows into the events table. If one of the ids
    is stored after all (by another writer in the meantime, or missed by the sample), the key
    COPY fails on its primary key; the savepoint is rolled back and the rows are written with
    `insert_rows` instead, which skips conflicts.

    Rows repeating an event id within `rows` are stored once (the first one). The rows' users
    are locked first (`lock_users`, one statement); rows of a user deleted meanwhile are not
    stored.

    `while_copying` (an importer reading its next batch) runs once all rows are handed to the
    COPY, while a thread streams them to the server: Python work that overlaps the server's.
    It must not use the database connection, which is busy with the COPY.
    """
    rows = lock_users(rows)
    if not rows:
        return 0
    # The first row of each id, as a later batch's row with a stored id is skipped.
    unique = {row[0]: row for row in reversed(rows)}
    # In event-id order the key index is filled left to right, not at random pages.
    ordered = sorted(unique)
    stored = _stored_among(ordered)
    if stored:
        ordered = [event_id for event_id in ordered if event_id not in stored]
        for event_id in stored:
            del unique[event_id]
    if not unique:
        return 0
    table, keys = _quote(Event._meta.db_table), _quote(EventKey._meta.db_table)
    columns = ", ".join(map(_quote, [*_columns(), Event._meta.get_field("created_at").column]))
    types = _copy_types()  # before the COPY: the connection runs nothing else during one
    # Valid ids hold no character that text COPY escapes: one C join and one write for all.
    lines = "\n".join(ordered) + "\n"
    plain = EVENT_ID_LINES_PATTERN.fullmatch(lines) is not None
    try:
        with transaction.atomic(), psycopg.Cursor(raw_connection(connection)) as cursor:
            with cursor.copy(
                f"COPY {keys} (event_id) FROM STDIN{'' if plain else ' (FORMAT BINARY)'}"
            ) as copy:
                if plain:
                    copy.write(lines)
                else:
                    copy.set_types(["text"])
                    for event_id in ordered:
                        copy.write_row((event_id,))
            cursor.adapters.register_dumper(None, _EncodedJsonbDumper)  # for this cursor only
            # With work to do meanwhile, a thread sends the rows: the server stores them while
            # this one runs `while_copying` (it waits on the socket with the GIL released).
            writer = QueuedLibpqWriter(cursor) if while_copying else None
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT BINARY)", writer=writer) as copy:
                copy.set_types(types)
                # Column by column and zipped back in C: no Python step per row but write_row.
                values = list(zip(*map(unique.__getitem__, ordered), strict=True))
                values[CONTEXT] = _encoded_contexts(values[CONTEXT])
                values.append(repeat(timezone.now()))  # created_at
                for row in zip(*values, strict=False):  # strict=False: repeat() never ends
                    copy.write_row(row)
                if while_copying:
                    while_copying()
    except psycopg.errors.UniqueViolation:
        logger.info(
            "COPY met event ids stored concurrently (or missed by the sampled lookup); "
            "writing %d rows with ON CONFLICT instead",
            len(unique),
        )
        return insert_rows(list(unique.values()))
    return len(unique)


def differences_from_stored(rows: Sequence[EventRow]) -> list[list[str]]:
    """For each row, the fields in which the stored event with its id differs from it (none:
    the same event), for an importer to report rows that repeat an earlier row's id with other
    values.

    Events are looked up by id among those at the rows' timestamps, which each monthly
    partition's timestamp index finds (there is no index by event id); an id stored at another
    time differs in `timestamp`, whatever else does.
    """
    if not rows:
        return []
    names = [name for name in COLUMNS if name != "event_id"]
    event_id, *columns = map(_quote, _columns())
    timestamp = _quote(Event._meta.get_field("timestamp").column)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {event_id}, {', '.join(columns)} FROM {_quote(Event._meta.db_table)} "
            f"WHERE {timestamp} = ANY(%s) AND {event_id} = ANY(%s)",
            [sorted({row.timestamp for row in rows}), sorted({row.event_id for row in rows})],
        )
        stored = {found[0]: dict(zip(names, found[1:], strict=True)) for found in cursor.fetchall()}
    differences = []
    for row in rows:
        event = stored.get(row.event_id)
        if event is None:
            differences.append(["timestamp"])
            continue
        given = row._asdict()
        given["context"] = orjson.loads(encode_json(row.context or {}))  # as jsonb holds it
        if isinstance(event["context"], str):  # Django's cursors leave jsonb as text
            event["context"] = orjson.loads(event["context"])
        differences.append([name for name in names if given[name] != event[name]])
    return differences
