"""Recommendation ids: what was shown, so clicks and purchases can be credited to it.

One `ServedRecommendation` row per list; its id is the `recommendation_id` every item of
the list carries, which the beacon sends back with impressions and clicks (`data-rec-id`).
A request does not write its row: it queues it, and one thread per process writes the
queue in batches (`ServedWriter`), so serving pays neither a statement nor a commit per list.
`lists_served_to` says which ids a browser may claim: those of lists shown to it.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Collection, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, NamedTuple

import orjson
from django.db import DatabaseError, IntegrityError, connection, connections, router, transaction
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.models import ServedRecommendation
from recommendations.models.marketing import CAMPAIGN_LIST_KIND
from recommendations.serving.process import PerProcess
from recommendations.sql import array_literal

if TYPE_CHECKING:  # serving.types imports events.tracking, whose validation's references import this module
    from recommendations.serving.types import Audience

logger = logging.getLogger(__name__)


FIELDS = ServedRecommendation._meta.concrete_fields
# Rows one statement writes at most, rows waiting at most (a database down for long: the
# newest are dropped, with an error in the log, rather than the web workers' memory growing),
# and attempts at a batch before it is dropped.
BATCH_ROWS = 500
MAX_QUEUED = 20_000
ATTEMPTS = 3


@cache
def _async_insert_sql() -> str:
    """One statement that sets `synchronous_commit = off` for its own transaction and inserts.

    A single round trip: no BEGIN/SET/COMMIT, and no wait for the WAL flush. Placeholders
    are cast to the column types because a SELECT list, unlike VALUES, is not typed by the
    target table.
    """
    return (
        f"{_insert_into()} "
        f"SELECT {_typed_placeholders()} "
        "FROM (SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
    )


def _typed_placeholders() -> str:
    """One `%s::<column type>` per column: `ServedRow.values()` sends arrays and JSON as text."""
    return ", ".join(f"%s::{f.db_type(connection)}" for f in FIELDS)


def _table_and_columns() -> str:
    """`<served table> (<every column>)`, as every way of writing rows names them."""
    quote = connection.ops.quote_name
    columns = ", ".join(quote(f.column) for f in FIELDS)
    return f"{quote(ServedRecommendation._meta.db_table)} ({columns})"


def _insert_into() -> str:
    return f"INSERT INTO {_table_and_columns()}"


class ServedRow(NamedTuple):
    """A served list on its way to the table: `ServedRecommendation`'s columns, in order.

    A plain tuple rather than a model instance: every request makes one, and the writer
    thread turns it into a COPY row without Django's per-field (per array element) preparation.
    """

    id: str
    kind: str
    source: str
    user_id: Any
    session_id: str
    model_version_id: int | None
    product_ids: list[str]
    scores: list[float]
    context: dict[str, Any]
    created_at: dt.datetime

    def values(self) -> tuple[Any, ...]:
        """Column values as COPY and the typed placeholders take them (arrays and JSON as text)."""
        return (
            *self[:6],
            array_literal(self.product_ids),
            array_literal(self.scores),
            orjson.dumps(self.context, default=str).decode(),
            self.created_at,
        )


ID_BYTES = 10
_random = threading.local()


def new_recommendation_id() -> str:
    """20 hex characters: unique enough for a retention window, short in HTML attributes.

    The bytes come from the operating system's random source, read 4 KB at a time per
    thread: one system call per request was 2.5% of a web worker's CPU under load.
    """
    pool, at = getattr(_random, "pool", b""), getattr(_random, "at", 0)
    if at + ID_BYTES > len(pool):
        pool, at = os.urandom(4096), 0
        _random.pool = pool
    _random.at = at + ID_BYTES
    return pool[at : at + ID_BYTES].hex()


def _forget_random_bytes() -> None:
    """A forked child must not hand out the ids its parent's unread bytes would give."""
    _random.__dict__.clear()


os.register_at_fork(after_in_child=_forget_random_bytes)


def record_served(
    *,
    kind: str,
    source: str,
    audience: Audience,
    product_ids: Sequence[str],
    scores: Sequence[float],
    model_version_id: int | None,
    context: dict[str, Any],
) -> str:
    """Record what is being shown and return its recommendation id (not stored when disabled,
    nor for an audience that records nothing: staff looking at someone's lists).

    Inside a transaction the row is saved with it, as the caller's transaction decides.
    Otherwise it is queued for this process's `ServedWriter`, which writes it within
    `SERVED_WRITE_DELAY_SECONDS`; with 0, it is written here in one statement that commits
    without waiting for the WAL flush (`_async_insert_sql`). Either way a crash can lose only
    the last moments of served lists, never corrupt them.
    """
    recommendation_id = new_recommendation_id()
    if not (rec_settings.RECORD_SERVED and product_ids and audience.record_exposure):
        return recommendation_id
    row = ServedRow(
        recommendation_id,
        kind,
        source,
        audience.user_id,
        audience.session_id[:64],
        model_version_id,
        list(product_ids),
        [float(s) for s in scores],
        context,
        timezone.now(),
    )
    if connection.in_atomic_block:
        ServedRecommendation(**row._asdict()).save(force_insert=True)
    elif rec_settings.SERVED_WRITE_DELAY_SECONDS > 0:
        ServedWriter.for_this_process().add(row)
    else:
        with connection.cursor() as cursor:
            cursor.execute(_async_insert_sql(), row.values())
    return recommendation_id


class ServedWriter(PerProcess):
    """One thread per process that writes queued served lists, in batches (COPY).

    Every `SERVED_WRITE_DELAY_SECONDS` (or when flushed) it takes what was queued and writes
    it in one transaction committed without waiting for the WAL flush; it closes its
    connection after a period with nothing to write. Queueing is an append to a deque, with
    no lock or wake-up: under load, a `queue.Queue`'s notify cost the web threads more than
    the INSERT it replaced. A failed batch is tried `ATTEMPTS` times, a second apart, then dropped with an
    error in the log: served lists are the record of what was shown, and the requests that
    showed them have been answered.
    """

    def __init__(self) -> None:
        super().__init__()
        self.rows: deque[ServedRow] = deque()
        self.flushes: deque[threading.Event] = deque()
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name="served-lists", daemon=True)
        self.thread.start()

    def add(self, row: ServedRow) -> None:
        if len(self.rows) >= MAX_QUEUED:
            logger.error("Dropped served list %s: %d lists wait to be written already", row.id, MAX_QUEUED)
            return
        self.rows.append(row)

    def flush(self, timeout: float = 30.0) -> bool:
        """Write everything queued so far; False if that took longer than `timeout`."""
        done = threading.Event()
        self.flushes.append(done)
        self.wake.set()
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            self.wake.wait(rec_settings.SERVED_WRITE_DELAY_SECONDS)
            self.wake.clear()
            flushed = [self.flushes.popleft() for _ in range(len(self.flushes))]
            try:
                idle = not self.rows
                while self.rows:
                    batch = [self.rows.popleft() for _ in range(min(len(self.rows), BATCH_ROWS))]
                    self._write(batch)
                # Kept open under steady traffic (a new connection each time would cost PostgreSQL a
                # new backend process), closed after a period with nothing to write.
                if idle:
                    connections[router.db_for_write(ServedRecommendation)].close()
            except Exception:  # a bug must not stop the thread, or the queue would only grow
                logger.exception("Writing served lists failed")
            finally:
                for event in flushed:
                    event.set()

    def _write(self, batch: list[ServedRow]) -> None:
        alias = router.db_for_write(ServedRecommendation)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                database = connections[alias]
                with transaction.atomic(using=alias), database.cursor() as cursor:
                    cursor.execute("SET LOCAL synchronous_commit = off")
                    # COPY: a fraction of a statement's cost per row, here and in PostgreSQL.
                    with database.wrap_database_errors, cursor.cursor.copy(_copy_sql()) as copy:
                        for row in batch:
                            copy.write_row(row.values())
                return
            except IntegrityError:
                # A row names a user or model version deleted since: write the others.
                try:
                    self._write_one_by_one(batch, alias)
                except DatabaseError as exc:
                    logger.error("Dropped %d served lists: %s", len(batch), exc)
                return
            except DatabaseError as exc:
                connections[alias].close()
                if attempt == ATTEMPTS:
                    logger.error(
                        "Dropped %d served lists after %d failed writes: %s", len(batch), attempt, exc
                    )
                else:
                    time.sleep(1.0)

    @staticmethod
    def _write_one_by_one(batch: list[ServedRow], alias: str) -> None:
        dropped = 0
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            # Foreign keys are checked at commit: here, at each row, inside its savepoint.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            for row in batch:
                try:
                    with transaction.atomic(using=alias):
                        cursor.execute(_insert_sql(), row.values())
                except IntegrityError:
                    dropped += 1
        logger.warning("Dropped %d served list(s) naming a user or model version deleted since", dropped)


@cache
def _insert_sql() -> str:
    return f"{_insert_into()} VALUES ({_typed_placeholders()})"


@cache
def _copy_sql() -> str:
    """`COPY <served table> (<every column>) FROM STDIN`: how batches are written."""
    return f"COPY {_table_and_columns()} FROM STDIN"


def flush_served(timeout: float = 30.0) -> bool:
    """Write this process's queued served lists now (at exit, in tests); True when done."""
    writer = ServedWriter.running()
    if writer is None or not writer.thread.is_alive():
        return True
    return writer.flush(timeout)


atexit.register(flush_served)


class ServedList(NamedTuple):
    """What an event naming a served list needs to know of it."""

    kind: str
    item_ids: list[str]  # products, or stores or campaigns in lists of those

    def holds_product(self, product_id: str | None) -> bool:
        """Whether an event about `product_id` may credit this list: a list of products that
        showed it. The one rule for the beacon's events (`events.references.claimable_by_browser`)
        and for the ids server code takes from the browser (`claim_recommendation`); a store's
        or a campaign's key may equal a product's, so lists of those credit no product."""
        # serving.types imports events.tracking, whose validation's references import this module.
        from recommendations.serving.types import Kind

        return (
            self.kind not in (Kind.STORES, Kind.SIMILAR_STORES, CAMPAIGN_LIST_KIND)
            and product_id in self.item_ids
        )


def lists_served_to(
    recommendation_ids: Collection[str], *, user_id: Any, session_id: str
) -> dict[str, ServedList]:
    """The lists among `recommendation_ids` that were shown to this visitor, by id.

    A browser's events may claim only these (`events.references`): with another visitor's
    list, or one never shown, a script could add clicks and impressions to any list. A list
    is the visitor's when it was served to their user or to their session. A visitor's first
    page is served before they have a session (serving creates none, see
    `Audience.for_request`), so its lists name nobody: the first session to claim one takes
    it (its row gets that session), and it is no other session's from then on.

    Lists this process has queued and not written yet are written first, so a click sent the
    moment its page showed finds its list; another web process's queue is written within
    `SERVED_WRITE_DELAY_SECONDS` (a quarter of a second, less than a shopper takes to click
    what a page shows), and an event naming a list still in it is not credited.
    One statement, whatever the number of ids.
    """
    ids = sorted(set(recommendation_ids))
    if not ids:
        return {}
    writer = ServedWriter.running()
    if writer is not None and writer.rows and not {row.id for row in tuple(writer.rows)}.isdisjoint(ids):
        flush_served()
    database = connections[router.db_for_write(ServedRecommendation)]  # where the writer writes
    quote = database.ops.quote_name
    table = quote(ServedRecommendation._meta.db_table)
    pk, kind, items, user, session = (
        quote(ServedRecommendation._meta.get_field(name).column)
        for name in ("id", "kind", "product_ids", "user", "session_id")
    )
    columns = f"{pk}, {kind}, {items}"
    # The UPDATE's rows are not seen by the SELECT (one snapshot): each list comes back once.
    sql = (
        f"WITH taken AS (UPDATE {table} SET {session} = %(session)s WHERE {pk} = ANY(%(ids)s) "
        f"AND {session} = '' AND {user} IS NULL AND %(session)s <> '' RETURNING {columns}) "
        f"SELECT {columns} FROM {table} WHERE {pk} = ANY(%(ids)s) "
        f"AND (({session} = %(session)s AND %(session)s <> '') OR {user} = %(user)s) "
        f"UNION ALL SELECT {columns} FROM taken"
    )
    with database.cursor() as cursor:
        cursor.execute(sql, {"ids": ids, "session": session_id, "user": user_id})
        return {row[0]: ServedList(row[1], row[2]) for row in cursor.fetchall()}


def prune_served(now: dt.datetime | None = None) -> int:
    """Delete served lists older than `SERVED_RETENTION_DAYS`; returns how many."""
    cutoff = (now or timezone.now()) - dt.timedelta(days=rec_settings.SERVED_RETENTION_DAYS)
    deleted, _ = ServedRecommendation.objects.filter(created_at__lt=cutoff).delete()
    logger.info("Pruned %d served recommendation lists older than %s", deleted, cutoff.date())
    return deleted
