"""Bulk import of historic events: generic CSV/JSONL files and the public datasets.

Rows are read in batches (50,000 by default). Each batch is checked completely, then written
in its own transaction with PostgreSQL COPY (`ingestion.copy_rows`); a batch with any bad
row writes nothing and the import stops, naming every bad line of that batch. Event ids are
derived from the source rows, so an interrupted or repeated import can simply be run again:
rows already stored are skipped and nothing is stored twice. A row repeating an earlier row's
event id is not stored either; it is counted apart (`_Repeats`), and named when its values
differ from the stored event's. Rows of users who opted out of personalisation are dropped
and counted, as `ingestion.ingest()` drops them (`privacy.optout`). The next batch is read
(and a CSV batch put in columns) while the server stores the current one (`_Prefetch`); an
error reading it surfaces once the current batch is stored.

Dataset users become lightweight accounts (username `<dataset>.<source id>`, unusable
password), created in the same transaction as their batch's events.

Datasets span years: before each batch is written, the monthly partitions of the events table
that its rows need are created (`partitions.ensure_partitions_for`, in their own short
transactions), so old events fill their own months instead of the DEFAULT partition.
"""

from __future__ import annotations

import gc
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import repeat
from json.encoder import encode_basestring_ascii
from operator import attrgetter, itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import connection, transaction
from django.db.models import Model

from recommendations.adapters import get_product_adapter, get_store_adapter
from recommendations.api.exceptions import TRANSIENT_ERRORS
from recommendations.events.columns import validate_columns
from recommendations.events.datasets import Dataset, InteractionBatch, get_dataset, require_files
from recommendations.events.ids import hashed_event_id, stable_event_ids
from recommendations.events.ingestion import USER_ID, IngestResult, copy_rows, differences_from_stored
from recommendations.events.partitions import ensure_partitions_for
from recommendations.events.rows import EVENT_ROW, EventRow
from recommendations.events.textfiles import (
    MAX_REPORTED_ERRORS,
    CsvBatch,
    UnreadableFile,
    count_lines,
    csv_batches,
    error_lines,
    file_kind,
    read_jsonl,
)
from recommendations.events.validation import KNOWN_FIELDS, EventValidationError, Origin, validate_batch
from recommendations.privacy.optout import opted_out_user_ids
from recommendations.progress import Progress
from recommendations.sql import raw_connection

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000
# CSV cells are text; these columns hold numbers or JSON in the event's JSON shape.
CSV_NUMBER_COLUMNS = {"value"}
CSV_JSON_COLUMNS = {"context", "products", "stores"}
CSV_CONVERTED_COLUMNS = frozenset(CSV_NUMBER_COLUMNS | CSV_JSON_COLUMNS)
# Ids of events without one derive from their content, as `json.dumps(raw, sort_keys=True,
# default=str)` writes it (so ids match earlier imports); one encoder instead of one per row.
_CONTENT_ENCODER = json.JSONEncoder(sort_keys=True, default=str)
# How that encoder writes each scalar type (a float only when finite).
_SCALAR_JSON: dict[type, Callable[[Any], str]] = {
    str: encode_basestring_ascii,
    int: int.__repr__,
    float: float.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
}
_TIMESTAMP = attrgetter("timestamp")
_EVENT_ID = itemgetter(0)


@dataclass
class ImportResult:
    """What an import did: rows read from the source, events newly stored, rows that repeated
    an earlier row's event id (not stored again), rows dropped because their user opted out of
    personalisation, rows a dataset's rules leave out (by reason: Olist's lines of cancelled
    orders), and time taken.

    `conflicts` names the first of the `conflicting` repeats, those whose values differ from
    the stored event (`MAX_REPORTED_ERRORS` of them, each "<file> line N: ...").
    """

    read: int = 0
    stored: int = 0
    repeated: int = 0
    conflicting: int = 0
    conflicts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    users_created: int = 0
    opted_out: int = 0
    left_out: Counter[str] = field(default_factory=Counter)

    @property
    def skipped(self) -> int:
        """Rows whose event was stored before this import (a re-run), repeats within the source,
        rows of users who opted out and rows left out aside."""
        return self.read - self.stored - self.repeated - self.opted_out - self.left_out.total()

    @property
    def rate(self) -> float:
        return self.read / self.seconds if self.seconds else 0.0


@dataclass
class ImportFailed(Exception):
    """A batch had bad rows; it wrote nothing (earlier batches were stored and are skipped on re-run)."""

    file: str
    errors: list[str]
    first_line: int
    last_line: int
    stored_before: int = 0
    result: ImportResult = field(default_factory=ImportResult)

    def __str__(self) -> str:
        earlier = (
            f" Events from earlier lines were stored ({self.stored_before} new); fix the file and run the "
            "same command again: stored events are skipped."
            if self.first_line > 2
            else ""
        )
        span = (
            f"line {self.first_line}"
            if self.first_line == self.last_line
            else f"lines {self.first_line}-{self.last_line}"
        )
        return (
            f"{self.file}: {len(self.errors)} bad row(s) in {span}; "
            f"nothing from those lines was stored.{earlier}{error_lines(self.errors)}"
        )


@dataclass
class DatabaseLost(Exception):
    """The database went away mid-import: the batch being written was rolled back, those
    before it are stored, and a re-run skips them."""

    file: str
    reason: str
    result: ImportResult

    def __str__(self) -> str:
        done = _stored_so_far(self.result, "once it is back")
        return f"The database was lost while importing {self.file} ({self.reason}). {done}"


@dataclass
class ImportInterrupted(KeyboardInterrupt):
    """Ctrl-C mid-import: the batches before are stored, and a re-run skips them. Still a
    KeyboardInterrupt, so whatever stops on one still stops.

    `writing`: the rows of the batch being written then, if any. Its transaction rolls back,
    unless the interruption came while it was committing: then the server may have stored it.
    """

    file: str
    result: ImportResult
    writing: int = 0

    def __str__(self) -> str:
        batch = (
            f", with rows {self.result.read + 1:,}-{self.result.read + self.writing:,} being written "
            "(stored only if it came as they were committed)"
            if self.writing
            else ""
        )
        return f"Interrupted while importing {self.file}{batch}. {_stored_so_far(self.result)}"


def _stored_so_far(result: ImportResult, when: str = "") -> str:
    """What an import stopped between batches left: those written are stored for good (each
    in its own transaction), and running it again (`when` that is possible) skips them."""
    if result.read:
        return (
            f"The first {result.read:,} rows were imported ({result.stored:,} new events); "
            f"{when + ', ' if when else ''}running the same command again skips them."
        )
    return f"Nothing was imported; run the same command again{' ' + when if when else ''}."


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def ensure_users(usernames: Iterable[str]) -> tuple[dict[str, Any], int]:
    """Primary keys of these usernames, creating lightweight accounts for the missing ones.

    Call inside a transaction. Returns the keys by username and how many accounts were made.
    A dataset has about one account per ten events, so accounts are written like events: one
    `INSERT ... SELECT FROM unnest(usernames)` instead of `bulk_create`, whose model instances
    and one placeholder per field and row cost more than the events' COPY.
    """
    User = get_user_model()
    wanted = set(usernames)
    keys = _user_keys(User, wanted)
    missing = sorted(wanted - keys.keys())
    if not missing:
        return keys, 0
    created = _create_users(User, missing)
    keys.update(created)
    if len(created) < len(missing):  # another import made some of them meanwhile
        keys.update(_user_keys(User, set(missing) - created.keys()))
    return keys, len(created)


def _user_keys(model: type[Model], usernames: set[str]) -> dict[str, Any]:
    """Primary key by username of the accounts that exist (one `= ANY(array)` query)."""
    if not usernames:
        return {}
    quote = connection.ops.quote_name
    name = quote(model._meta.get_field(model.USERNAME_FIELD).column)
    table = quote(model._meta.db_table)
    sql = f"SELECT {name}, {quote(model._meta.pk.column)} FROM {table} WHERE {name} = ANY(%b)"
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(sql, [sorted(usernames)])
        return dict(cursor.fetchall())


def _create_users(model: type[Model], usernames: list[str]) -> dict[str, Any]:
    """Create accounts with an unusable password and every other field at its default, as
    `bulk_create` would (a callable default, such as a UUID key, is called per account; no
    save() or signals run). Usernames taken meanwhile are skipped. Returns the new keys."""
    meta = model._meta
    quote = connection.ops.quote_name
    username_field = meta.get_field(model.USERNAME_FIELD)
    # One unusable hash for all: nobody can log in with it.
    template = model(**{username_field.attname: "", "password": make_password(None)})
    columns: list[str] = []
    selected: list[str] = []
    constants: list[Any] = []
    arrays: list[list[Any]] = [usernames]
    for model_field in meta.local_concrete_fields:
        if (
            model_field.generated
            or (model_field.primary_key and model_field.db_returning)
            or (model_field.has_db_default() and not model_field.has_default())
        ):
            continue  # computed or filled in by the database
        columns.append(quote(model_field.column))
        if model_field is username_field:
            selected.append("x.a0")
        elif model_field.has_default() and callable(model_field.default):
            arrays.append(
                [model_field.get_db_prep_save(model_field.get_default(), connection) for _ in usernames]
            )
            selected.append(f"x.a{len(arrays) - 1}")
        else:
            value = model_field.get_db_prep_save(model_field.pre_save(template, add=True), connection)
            if value is None:
                selected.append("NULL")  # the column's type, unlike an untyped parameter
            else:
                selected.append("%b")
                constants.append(value)
    aliases = ", ".join(f"a{i}" for i in range(len(arrays)))
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) SELECT {', '.join(selected)} "
        f"FROM unnest({', '.join(['%b'] * len(arrays))}) AS x({aliases}) ORDER BY x.a0 "
        f"ON CONFLICT DO NOTHING RETURNING {quote(username_field.column)}, {quote(meta.pk.column)}"
    )
    with psycopg.Cursor(raw_connection(connection)) as cursor:
        cursor.execute(sql, [*constants, *arrays])
        return dict(cursor.fetchall())


def _reporter(path: Path, progress: Progress | None, header_lines: int) -> Callable[[int], None]:
    """What `_run` calls with the rows read so far: tells `progress` how far through the file
    the import is. The file's rows are counted (a pass over it) only when someone listens."""
    if progress is None:
        return lambda rows: None
    total = max(count_lines(path) - header_lines, 0)
    stage = f"importing {path.name}"
    return lambda rows: progress(stage, rows, total)


class _Prefetch:
    """Batches, each read one step ahead when `read_next` is called (by `copy_rows` while the
    server stores the current batch), else when it is asked for. An error reading it is
    raised when the batch is asked for, after the current one is stored."""

    def __init__(self, batches: Iterator[Any]) -> None:
        self.batches = batches
        self.next: tuple[Any, BaseException | None] | None = None

    def read_next(self) -> None:
        if self.next is None:
            try:
                self.next = (next(self.batches, _END), None)
            except Exception as exc:
                self.next = (None, exc)

    def __iter__(self) -> Iterator[Any]:
        while True:
            self.read_next()
            assert self.next is not None
            (batch, error), self.next = self.next, None
            if error is not None:
                raise error
            if batch is _END:
                return
            yield batch


_END = object()


class _Repeats:
    """The rows of an import that repeat the event id of an earlier row of its file.

    Such a row is not stored (`copy_rows` keeps a batch's first row of an id, and a later
    batch's row finds the id stored), so the import counts it apart from the events stored
    before it began, and names those that differ from the stored event: an order id given as
    the event_id of each of the order's lines loses all lines but the first.

    Ids are remembered as 64-bit hashes beside the line of their first row, in sorted arrays:
    16 bytes a row, where a set of the ids would take over 100 (imports run to millions of
    rows). Two ids of one hash would count a row as repeated (for ten million rows, a chance
    of a few in a million); what is stored never depends on it.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.hashes = np.empty(0, dtype=np.int64)
        self.lines = np.empty(0, dtype=np.int64)
        self.count = 0
        self.conflicting = 0
        self.conflicts: list[str] = []

    def find(self, rows: Sequence[EventRow], lines: Sequence[int]) -> list[tuple[EventRow, int, int]]:
        """(row, its line, the line of its id's first row) for each of `rows` whose id an earlier
        row had, in this batch or an earlier one; the batch's new ids are remembered."""
        hashes = np.fromiter(map(hash, map(_EVENT_ID, rows)), dtype=np.int64, count=len(rows))
        unique, first, inverse = np.unique(hashes, return_index=True, return_inverse=True)
        line_of = np.asarray(lines, dtype=np.int64)
        first_lines = line_of[first]
        at = np.searchsorted(self.hashes, unique)
        known = np.zeros(len(unique), dtype=bool)
        if len(self.hashes):
            inside = np.minimum(at, len(self.hashes) - 1)
            known = self.hashes[inside] == unique
            first_lines = np.where(known, self.lines[inside], first_lines)
        new = ~known
        self.hashes = np.insert(self.hashes, at[new], unique[new])
        self.lines = np.insert(self.lines, at[new], first_lines[new])
        repeated = np.ones(len(rows), dtype=bool)
        repeated[first[new]] = False
        return [(rows[i], lines[i], int(first_lines[inverse[i]])) for i in np.flatnonzero(repeated).tolist()]

    def check(self, repeated: list[tuple[EventRow, int, int]]) -> None:
        """Count the batch's repeats (`find`) once it is stored, naming those whose values
        differ from the stored event."""
        if not repeated:
            return
        self.count += len(repeated)
        differences = differences_from_stored([row for row, _, _ in repeated])
        for (row, line, first), fields in zip(repeated, differences, strict=True):
            if not fields:
                continue
            self.conflicting += 1
            if len(self.conflicts) < MAX_REPORTED_ERRORS:
                self.conflicts.append(
                    f"{self.file} line {line}: event_id {row.event_id} is that of line {first}, "
                    f"with another {', '.join(fields)}; not stored"
                )


def _run(
    batches: Iterator[Any],
    write: Callable[[Any, Callable[[], None]], tuple[IngestResult, int]],
    file: str,
    report: Callable[[int], None],
    repeats: _Repeats,
    left_out: Counter[str] | None = None,
) -> ImportResult:
    """Write the batches; `write` gets each with a function that reads the next one ahead,
    and stores its rows through `_store` with `repeats` (and counts the rows it leaves out
    in `left_out`)."""
    # The list and the counter the batches add to.
    result = ImportResult(conflicts=repeats.conflicts, left_out=Counter() if left_out is None else left_out)
    started = time.monotonic()
    collecting = gc.isenabled()
    # A batch is tens of thousands of tuples of strings, none in a reference cycle; the cyclic
    # collector would still walk all of them again and again (a quarter of an import's time).
    gc.disable()
    ahead = _Prefetch(batches)
    writing = 0  # rows of the batch being written
    try:
        for batch in ahead:
            writing = len(batch)
            try:
                written, users = write(batch, ahead.read_next)
            except ImportFailed as failure:
                failure.stored_before = result.stored
                failure.result = result
                raise
            result.read += len(batch)
            result.stored += written.stored
            result.opted_out += written.opted_out
            result.users_created += users
            result.repeated, result.conflicting = repeats.count, repeats.conflicting
            writing = 0
            report(result.read)
    except UnreadableFile as unreadable:  # reading a batch after those stored
        if result.read:
            unreadable.outcome = (
                f"The first {result.read:,} rows were imported ({result.stored:,} new events); "
                "once it is fixed, running the import again skips them."
            )
        raise
    except TRANSIENT_ERRORS as exc:  # a restart, a lost network: the batch written rolled back
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DatabaseLost(file, reason, result) from exc
    except KeyboardInterrupt:  # Ctrl-C: the batch being written rolls back, unless committing
        raise ImportInterrupted(file, result, writing) from None
    finally:
        if collecting:
            gc.enable()
        result.seconds = time.monotonic() - started
    logger.info(
        "Imported %s: %d rows read, %d events stored, %d already present, %d repeated within the "
        "file (%d with other values), %d dropped (users opted out), %d users created in %.1fs "
        "(%.0f rows/s)",
        file,
        result.read,
        result.stored,
        result.skipped,
        result.repeated,
        result.conflicting,
        result.opted_out,
        result.users_created,
        result.seconds,
        result.rate,
    )
    return result


def _store(
    rows: list[EventRow], lines: Sequence[int], repeats: _Repeats, read_next: Callable[[], None] | None
) -> IngestResult:
    """Store a batch's valid rows (`lines`: the line of each) with `copy_rows`, which skips
    ids already stored. Rows of users who opted out are dropped first (one query for the
    batch's users); rows repeating an earlier row's id go to `repeats`."""
    received = len(rows)
    opted_out = opted_out_user_ids(set(map(USER_ID, rows)))
    if opted_out:
        kept = [i for i, row in enumerate(rows) if row.user_id is None or str(row.user_id) not in opted_out]
        rows, lines = [rows[i] for i in kept], [lines[i] for i in kept]
    repeated = repeats.find(rows, lines)
    stored = copy_rows(rows, while_copying=read_next)
    repeats.check(repeated)
    return IngestResult(received=received, stored=stored, opted_out=received - len(rows))


def _failed(file: str, errors: list[tuple[int, str]], lines: list[int]) -> ImportFailed:
    """The batch's errors as "<file> line N: problem", in line order."""
    messages = [f"{file} line {line}: {message}" for line, message in sorted(errors)]
    return ImportFailed(file=file, errors=messages, first_line=min(lines), last_line=max(lines))


class _CatalogueKeys:
    """Source ids -> engine keys (product, its store; store; user), remembered across batches:
    most ids repeat from one batch to the next, so each is looked up once per import."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset
        self.products: dict[str, tuple[str, str]] = {}
        self.stores: dict[str, str] = {}
        self.users: dict[str, Any] = {}

    def load_products(self, source_ids: set[str]) -> None:
        adapter = get_product_adapter()
        keys = adapter.keys_by_source_id(source_ids - self.products.keys())
        store_of: dict[str, str] = {}
        if keys and adapter.store_field:
            pairs = adapter.model._default_manager.filter(pk__in=list(keys.values()))
            store_of = {
                adapter.key(pk): str(store)
                for pk, store in pairs.values_list("pk", f"{adapter.store_field}_id")
            }
        self.products.update((source, (key, store_of.get(key, ""))) for source, key in keys.items())

    def load_stores(self, source_ids: set[str]) -> None:
        adapter = get_store_adapter()
        missing = source_ids - self.stores.keys()
        if adapter is not None and missing:
            self.stores.update(adapter.keys_by_source_id(missing))

    def load_users(self, source_ids: set[str]) -> int:
        """Look up users, creating missing accounts in the caller's transaction; returns how many were new."""
        missing = {s: self.dataset.username(s) for s in source_ids - self.users.keys()}
        if not missing:
            return 0
        by_name, created = ensure_users(missing.values())
        self.users.update((source, by_name[name]) for source, name in missing.items())
        return created


def import_dataset_events(
    name: str, folder: Path | str, *, batch_rows: int = DEFAULT_BATCH_ROWS, progress: Progress | None = None
) -> ImportResult:
    """Import a public dataset's interactions (see `datasets`); the catalogue must be imported first."""
    dataset = get_dataset(name)
    folder = Path(folder)
    keys = _CatalogueKeys(dataset)
    file = dataset.interaction_file
    context = {"source": name}
    left_out: Counter[str] = Counter()

    def write(batch: InteractionBatch, read_next: Callable[[], None]) -> tuple[IngestResult, int]:
        errors = [(error.line, error.message) for error in batch.errors]
        product_ids, store_ids = batch.product_source_ids, batch.store_source_ids
        keys.load_products(set(product_ids))
        named_stores = set(store_ids) - {""}
        keys.load_stores(named_stores)
        if not keys.products.keys() >= set(product_ids) or not keys.stores.keys() >= named_stores:
            hint = f"import it first with `manage.py import_catalog --dataset {name} {folder}`"
            for line, product, store in zip(batch.lines, product_ids, store_ids, strict=True):
                if product not in keys.products:
                    errors.append((line, f"product {product} is not in the catalogue; {hint}"))
                elif store and store not in keys.stores:
                    errors.append((line, f"store {store} is not in the catalogue"))
        if errors:
            raise _failed(file, errors, [*batch.lines, *(error.line for error in batch.errors)])
        ensure_partitions_for(batch.timestamps)
        with transaction.atomic():
            user_ids = batch.user_source_ids
            created = keys.load_users(set(user_ids))
            products = list(map(keys.products.__getitem__, product_ids))  # (product, its store)
            stores = (
                [keys.stores[s] if s else p[1] for s, p in zip(store_ids, products, strict=True)]
                if named_stores
                else map(itemgetter(1), products)
            )
            # Column by column, each turned into the events' in C.
            columns = (
                stable_event_ids(name, batch.keys),
                batch.event_types,
                map(keys.users.__getitem__, user_ids),
                repeat(""),
                map(itemgetter(0), products),
                stores,
                repeat(""),
                batch.values,
                batch.revenues,
                batch.timestamps,
                repeat(context),  # one dict for all: encoded once by copy_rows
                repeat(""),
            )
            rows = list(map(EVENT_ROW, zip(*columns, strict=False)))  # strict=False: repeat() never ends
            stored = _store(rows, batch.lines, repeats, read_next)
        left_out.update(batch.skipped)  # with the batch's rows read, once it is stored
        return stored, created

    require_files(folder, file)  # before its lines are counted for `progress`
    report = _reporter(folder / file, progress, header_lines=1)
    repeats = _Repeats(file)
    return _run(dataset.interaction_batches(folder, batch_rows), write, file, report, repeats, left_out)


@dataclass
class _CsvRead:
    """A batch as read, with its events by column (`_csv_columns`, None: read it row by row)."""

    batch: CsvBatch
    columns: dict[str, Sequence[Any]] | None

    def __len__(self) -> int:
        return len(self.batch)


def _csv_columns(batch: CsvBatch) -> dict[str, Sequence[Any]] | None:
    """The batch's events column by column, as `validate_columns` takes them, with their ids.

    The same values `_csv_event` makes row by row: a blank cell is an absent field (None),
    `value` a float, `context` parsed JSON. None when a row has to be read on its own: more or
    fewer cells than the header, a column that is repeated or not an event field, or a cell that
    does not convert (the per-row path then names the line).
    """
    header = batch.header
    if len(set(header)) != len(header) or not KNOWN_FIELDS.issuperset(header):
        return None
    by_column = batch.by_column()
    if by_column is None:
        return None
    cells: dict[str, Sequence[str]] = {}
    for name, column in zip(header, by_column, strict=True):
        if column.count("") < len(column):  # a wholly blank column is absent from every event
            cells[name] = column
    if cells.get("products", ("",)).count("") < len(cells.get("products", ())):
        return None  # listed products are checked event by event
    columns: dict[str, Sequence[Any]] = {}
    for name, column in cells.items():
        try:
            if name in CSV_NUMBER_COLUMNS:  # few distinct values (quantities): each converted once
                numbers = {cell: float(cell) for cell in set(column) if cell}
                columns[name] = list(map(numbers.get, column))
            elif name in CSV_JSON_COLUMNS:
                columns[name] = [json.loads(cell) if cell else None for cell in column]
            else:
                columns[name] = [cell or None for cell in column] if "" in column else column
        except ValueError:
            return None
    columns["event_id"] = _csv_event_ids(cells, columns)
    return columns


def _csv_event_ids(cells: dict[str, Sequence[str]], columns: dict[str, Sequence[Any]]) -> Sequence[str]:
    """Each row's `event_id`, or else the id derived from its content, equal to the per-row path's.

    That id hashes the row's JSON (`_CONTENT_ENCODER.encode(raw)`). Rows whose cells are all
    filled share one key set, so their JSON is joined from the key texts and the cells encoded
    column by column, as the encoder writes them (each distinct number once); rows with a blank
    cell or a JSON cell become dicts for `_json_texts`.
    """
    given = cells.get("event_id")
    if given is not None and "" not in given:
        return given
    names = sorted(cells)  # the encoder's sort_keys
    count = len(cells[names[0]])
    if CSV_JSON_COLUMNS.intersection(names):
        by_encoder: Sequence[int] = range(count)
        texts = [""] * count
    else:
        encoded: list[tuple[str, Iterable[str]]] = []
        for name in names:
            if name in CSV_NUMBER_COLUMNS:  # by cell, not by float: "-0" and "0" are written apart
                texts_of = {cell: _CONTENT_ENCODER.encode(float(cell)) for cell in set(cells[name]) if cell}
                texts_of[""] = ""  # a blank cell's row is written by `_json_texts` below
                encoded.append((name, map(texts_of.__getitem__, cells[name])))
            else:
                encoded.append((name, map(encode_basestring_ascii, cells[name])))
        texts = list(_json_objects(encoded))
        by_encoder = sorted(
            {i for name in names if "" in cells[name] for i, cell in enumerate(cells[name]) if not cell}
        )
    raws = [{name: columns[name][i] for name in names if columns[name][i] is not None} for i in by_encoder]
    for i, text in zip(by_encoder, _json_texts(raws), strict=True):
        texts[i] = text
    ids = _content_ids(texts)
    return ids if given is None else [own or derived for own, derived in zip(given, ids, strict=True)]


def _content_ids(texts: Iterable[str]) -> list[str]:
    """`stable_event_id("import", text)` for JSON object texts, which are never readable ids
    (a `{` is not allowed in one), so each is the namespace and a hash of the text."""
    return [hashed_event_id("import", text) for text in texts]


def _json_texts(raws: list[dict[str, Any]]) -> list[str]:
    """`_CONTENT_ENCODER.encode(raw)` for each event, written column by column where it can be.

    Events with the same keys (in the same order) form a group; each key's values are encoded
    for the whole group as the encoder writes them (`_SCALAR_JSON`) and joined row by row in C.
    A group with a nested or non-finite value goes through the encoder itself.
    """
    texts: list[str] = [""] * len(raws)
    groups: dict[tuple[str, ...], list[int]] = {}
    for position, raw in enumerate(raws):
        groups.setdefault(tuple(raw), []).append(position)
    for keys, positions in groups.items():
        encoded: list[tuple[str, Iterable[str]]] = []
        for name in sorted(keys):  # the encoder's sort_keys
            values = [raws[position][name] for position in positions]
            kinds = set(map(type, values))
            if not kinds <= _SCALAR_JSON.keys() or (
                float in kinds and not all(math.isfinite(v) for v in values if type(v) is float)
            ):
                break
            writer = _SCALAR_JSON[kinds.pop()] if len(kinds) == 1 else None
            texts_of = map(writer, values) if writer else [_SCALAR_JSON[type(v)](v) for v in values]
            encoded.append((name, texts_of))
        else:
            # strict=False: no keys gives endless "{}"
            for position, text in zip(positions, _json_objects(encoded), strict=False):
                texts[position] = text
            continue
        for position in positions:
            texts[position] = _CONTENT_ENCODER.encode(raws[position])
    return texts


def _json_objects(columns: Sequence[tuple[str, Iterable[str]]]) -> Iterator[str]:
    """'{"a": ' a ', "b": ' b ... '}' per row, joined row by row in C, from each key's values
    already written as JSON (keys in the encoder's order). Endless "{}" for no keys."""
    if not columns:
        return repeat("{}")
    parts: list[Iterable[str]] = []
    for name, values in columns:
        parts.append(repeat(f"{', ' if parts else '{'}{encode_basestring_ascii(name)}: "))
        parts.append(values)
    parts.append(repeat("}"))
    return map("".join, zip(*parts, strict=False))  # strict=False: repeat() never ends


def _dict_columns(raws: list[dict[str, Any]]) -> dict[str, list[Any]] | None:
    """Events given as dicts, column by column for `validate_columns` (None: an unknown field)."""
    names = set().union(*raws)
    if not KNOWN_FIELDS.issuperset(names):
        return None
    return {name: [raw.get(name) for raw in raws] for name in names}


def _csv_event(header: list[str], cells: Sequence[str]) -> dict[str, Any] | str:
    """A CSV row as the event's JSON shape: empty cells are absent, some cells are numbers or JSON."""
    if len(cells) != len(header):  # a row cut short would otherwise be an event of "now"
        return f"{len(cells)} cells under a header of {len(header)} columns"
    raw: dict[str, Any] = {column: cell for column, cell in zip(header, cells, strict=False) if cell}
    for column in CSV_CONVERTED_COLUMNS.intersection(raw):
        try:
            raw[column] = float(raw[column]) if column in CSV_NUMBER_COLUMNS else json.loads(raw[column])
        except ValueError:
            return f"{column} must be {'a number' if column in CSV_NUMBER_COLUMNS else 'JSON'}"
    return raw


def import_event_file(
    path: Path | str,
    *,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    whole_lines: bool = True,
) -> ImportResult:
    """Import events in the REST API's JSON shape from CSV (one column per field) or JSONL.

    `product_id`, `store_id` and `user_id` are primary keys in this shop. Rows without an
    `event_id` get one derived from their content, so a re-run stores nothing twice. A CSV
    file whose last line ends without a line break looks cut short, its last value with it,
    and is refused (`open_text`) unless `whole_lines` is False; a JSON line cut short is not
    JSON, a bad line either way.

    A batch is first validated column by column (`validate_columns`); a batch that this does
    not cover or that has a bad row is validated event by event, which names each bad line.
    """
    path = Path(path)
    file = path.name

    repeats = _Repeats(file)

    def store(
        rows: list[EventRow], lines: Sequence[int], read_next: Callable[[], None] | None
    ) -> tuple[IngestResult, int]:
        ensure_partitions_for(list(map(_TIMESTAMP, rows)))
        with transaction.atomic():
            return _store(rows, lines, repeats, read_next), 0

    def write(
        batch: list[tuple[int, dict[str, Any] | str]],
        read_next: Callable[[], None] | None = None,
        *,
        by_columns: bool = True,
    ) -> tuple[IngestResult, int]:
        lines = [line for line, _ in batch]
        errors = [(line, raw) for line, raw in batch if isinstance(raw, str)]
        good = [(line, raw) for line, raw in batch if isinstance(raw, dict)]
        raws = [raw for _, raw in good]
        unnamed = [raw for raw in raws if not raw.get("event_id")]
        for raw, event_id in zip(unnamed, _content_ids(_json_texts(unnamed)), strict=True):
            raw["event_id"] = event_id
        columns = _dict_columns(raws) if by_columns and not errors else None
        rows = validate_columns(columns, len(raws)) if columns is not None else None
        if rows is None:
            try:
                rows = validate_batch(
                    raws, Origin(trusted=True), positions=[line for line, _ in good], position_name="line"
                )
            except EventValidationError as exc:
                errors += [(e["line"], _fields(e["errors"])) for e in exc.errors]
        if errors:
            raise _failed(file, errors, lines)
        return store(rows, [line for line, _ in good], read_next)

    def write_csv(read: _CsvRead, read_next: Callable[[], None]) -> tuple[IngestResult, int]:
        batch, columns = read.batch, read.columns
        repeated = sorted({name for name in batch.header if batch.header.count(name) > 1})
        if repeated:
            raise ValueError(f"{file}: the header names {', '.join(repeated)} more than once.")
        unknown = [name for name in batch.header if name not in KNOWN_FIELDS]
        if unknown:  # said once, not on every line
            names, many = ", ".join(map(repr, unknown)), len(unknown) > 1
            raise ValueError(
                f"{file}: the header's {names} {'are not event fields' if many else 'is not an event field'} "
                f"(the columns are {', '.join(sorted(KNOWN_FIELDS))}). Rename {'them' if many else 'it'}, "
                "or, for a shared dataset's folder, use --dataset NAME."
            )
        rows = validate_columns(columns, len(batch)) if columns is not None else None
        if rows is None:  # row by row, to name the bad lines or read the odd ones
            events = [_csv_event(batch.header, cells) for cells in batch.by_row()]
            return write(list(zip(batch.lines, events, strict=True)), read_next, by_columns=False)
        return store(rows, batch.lines, read_next)

    if file_kind(path) == ".csv":
        report = _reporter(path, progress, header_lines=1)
        # Read and put in columns (with content ids) ahead, while the previous batch is stored.
        read = (
            _CsvRead(batch, _csv_columns(batch))
            for batch in csv_batches(path, batch_rows, whole_lines=whole_lines)
        )
        return _run(read, write_csv, file, report, repeats)
    report = _reporter(path, progress, header_lines=0)
    return _run(_batches(read_jsonl(path), batch_rows), write, file, report, repeats)


def _fields(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
