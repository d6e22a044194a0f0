"""Bulk import of historic events: generic CSV/JSONL files and the public datasets.

Rows are read in batches (50,000 by default). Each batch is checked completely, then written
in its own transaction with PostgreSQL COPY (`ingestion.copy_rows`); a batch with any bad
row writes nothing and the import stops, naming every bad line of that batch. Event ids are
derived from the source rows, so an interrupted or repeated import can simply be run again:
rows already stored are skipped and nothing is stored twice.

Dataset users become lightweight accounts (username `<dataset>.<source id>`, unusable
password), created in the same transaction as their batch's events.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.db import transaction
from tqdm import tqdm

from recommendations.adapters import get_product_adapter, get_store_adapter
from recommendations.events.datasets import (
    Dataset,
    InteractionSource,
    RowError,
    count_lines,
    get_dataset,
    open_text,
)
from recommendations.events.ingestion import copy_rows
from recommendations.events.validation import (
    EventRow,
    EventValidationError,
    Origin,
    stable_event_id,
    validate_batch,
)

logger = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 50_000
MAX_REPORTED_ERRORS = 20
# CSV cells are text; these columns hold numbers or JSON in the event's JSON shape.
CSV_NUMBER_COLUMNS = {"value"}
CSV_JSON_COLUMNS = {"context", "products"}


@dataclass
class ImportResult:
    """What an import did: rows read from the source, events newly stored, time taken."""

    read: int = 0
    stored: int = 0
    seconds: float = 0.0
    users_created: int = 0

    @property
    def skipped(self) -> int:
        """Rows whose events were already stored (a re-run) or repeated within the source."""
        return self.read - self.stored

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
        shown = "\n  ".join(self.errors[:MAX_REPORTED_ERRORS])
        more = len(self.errors) - MAX_REPORTED_ERRORS
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
            f"nothing from those lines was stored.{earlier}\n  {shown}"
            + (f"\n  ... and {more} more" if more > 0 else "")
        )


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
    """Primary keys of these usernames, creating lightweight accounts for the missing ones."""
    User = get_user_model()
    field_name = User.USERNAME_FIELD
    wanted = set(usernames)
    existing = dict(
        User._default_manager.filter(**{f"{field_name}__in": wanted}).values_list(field_name, "pk")
    )
    missing = wanted - existing.keys()
    if missing:
        unusable = make_password(None)  # one unusable hash for all: nobody can log in with it
        User._default_manager.bulk_create(
            [User(**{field_name: name, "password": unusable}) for name in sorted(missing)],
            batch_size=5000,
            ignore_conflicts=True,
        )
        existing.update(
            User._default_manager.filter(**{f"{field_name}__in": missing}).values_list(field_name, "pk")
        )
    return existing, len(missing)


class _Progress:
    """A tqdm bar over source rows, updated every few thousand rows to stay cheap."""

    def __init__(self, path: Path, enabled: bool, header_lines: int = 1) -> None:
        total = max(count_lines(path) - header_lines, 0) if enabled else None
        self.bar = tqdm(total=total, unit=" rows", desc=f"Importing {path.name}", disable=not enabled)

    def update(self, rows: int) -> None:
        self.bar.update(rows)

    def close(self) -> None:
        self.bar.close()


def _run(
    batches: Iterator[list[Any]],
    write: Callable[[list[Any]], tuple[int, int]],
    file: str,
    progress: _Progress,
) -> ImportResult:
    result = ImportResult()
    started = time.monotonic()
    try:
        for batch in batches:
            try:
                stored, users = write(batch)
            except ImportFailed as failure:
                failure.stored_before = result.stored
                failure.result = result
                raise
            result.read += len(batch)
            result.stored += stored
            result.users_created += users
            progress.update(len(batch))
    finally:
        progress.close()
        result.seconds = time.monotonic() - started
    logger.info(
        "Imported %s: %d rows read, %d events stored, %d already present, %d users created "
        "in %.1fs (%.0f rows/s)",
        file,
        result.read,
        result.stored,
        result.skipped,
        result.users_created,
        result.seconds,
        result.rate,
    )
    return result


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
    name: str, folder: Path | str, *, batch_rows: int = DEFAULT_BATCH_ROWS, progress: bool = True
) -> ImportResult:
    """Import a public dataset's interactions (see `datasets`); the catalogue must be imported first."""
    dataset = get_dataset(name)
    folder = Path(folder)
    keys = _CatalogueKeys(dataset)
    file = dataset.interaction_file
    context = {"source": name}

    def write(batch: list[InteractionSource | RowError]) -> tuple[int, int]:
        lines = [item.line for item in batch]
        errors = [(item.line, item.message) for item in batch if isinstance(item, RowError)]
        sources = [item for item in batch if isinstance(item, InteractionSource)]
        keys.load_products({s.product_source_id for s in sources})
        keys.load_stores({s.store_source_id for s in sources if s.store_source_id})
        for s in sources:
            if s.product_source_id not in keys.products:
                hint = f"import it first with `manage.py import_catalog --dataset {name} {folder}`"
                errors.append((s.line, f"product {s.product_source_id} is not in the catalogue; {hint}"))
            elif s.store_source_id and s.store_source_id not in keys.stores:
                errors.append((s.line, f"store {s.store_source_id} is not in the catalogue"))
        if errors:
            raise _failed(file, errors, lines)
        with transaction.atomic():
            created = keys.load_users({s.user_source_id for s in sources})
            rows = []
            for s in sources:
                product, product_store = keys.products[s.product_source_id]
                store = keys.stores[s.store_source_id] if s.store_source_id else product_store
                event_id = stable_event_id(name, *s.key)
                user = keys.users[s.user_source_id]
                rows.append(
                    EventRow(
                        event_id,
                        s.event_type,
                        user,
                        "",
                        product,
                        store,
                        "",
                        s.value,
                        s.revenue,
                        s.timestamp,
                        context,
                        "",
                    )
                )
            return copy_rows(rows), created

    bar = _Progress(folder / file, progress)
    return _run(_batches(dataset.interactions(folder), batch_rows), write, file, bar)


EVENT_FILE_KINDS = (".csv", ".jsonl", ".ndjson")


def _file_kind(path: Path) -> str:
    suffixes = [s for s in path.suffixes if s != ".gz"]
    return suffixes[-1] if suffixes else ""


def _read_event_file(path: Path) -> Iterator[tuple[int, dict[str, Any] | str]]:
    """(line, raw event) from a .jsonl or .csv file (optionally .gz); a string is the line's parse error."""
    kind = _file_kind(path)
    if kind in (".jsonl", ".ndjson"):
        with open_text(path) as handle:
            for line, text in enumerate(handle, start=1):
                if not text.strip():
                    continue
                try:
                    raw = json.loads(text)
                except json.JSONDecodeError as exc:
                    yield line, f"not valid JSON ({exc.msg})"
                    continue
                yield line, raw if isinstance(raw, dict) else "each line must be a JSON object"
    elif kind == ".csv":
        with open_text(path) as handle:
            reader = csv.DictReader(handle)
            for row in reader:
                yield reader.line_num, _csv_event(reader.line_num, row)


def _csv_event(line: int, row: dict[str | None, Any]) -> dict[str, Any] | str:
    if None in row:
        return "more cells than header columns"
    raw: dict[str, Any] = {}
    for column, cell in row.items():
        if cell is None or cell == "":
            continue
        try:
            if column in CSV_NUMBER_COLUMNS:
                raw[column] = float(cell)
            elif column in CSV_JSON_COLUMNS:
                raw[column] = json.loads(cell)
            else:
                raw[column] = cell
        except ValueError:
            return f"{column} must be {'a number' if column in CSV_NUMBER_COLUMNS else 'JSON'}"
    return raw


def import_event_file(
    path: Path | str, *, batch_rows: int = DEFAULT_BATCH_ROWS, progress: bool = True
) -> ImportResult:
    """Import events in the REST API's JSON shape from CSV (one column per field) or JSONL.

    `product_id`, `store_id` and `user_id` are primary keys in this shop. Rows without an
    `event_id` get one derived from their content, so a re-run stores nothing twice.
    """
    path = Path(path)
    file = path.name

    def write(batch: list[tuple[int, dict[str, Any] | str]]) -> tuple[int, int]:
        lines = [line for line, _ in batch]
        errors = [(line, raw) for line, raw in batch if isinstance(raw, str)]
        good = [(line, raw) for line, raw in batch if isinstance(raw, dict)]
        for _, raw in good:
            if not raw.get("event_id"):
                raw["event_id"] = stable_event_id("import", json.dumps(raw, sort_keys=True, default=str))
        try:
            rows = validate_batch(
                [raw for _, raw in good],
                Origin(trusted=True),
                positions=[line for line, _ in good],
                position_name="line",
            )
        except EventValidationError as exc:
            errors += [(e["line"], _fields(e["errors"])) for e in exc.errors]
        if errors:
            raise _failed(file, errors, lines)
        with transaction.atomic():
            return copy_rows(rows), 0

    if _file_kind(path) not in EVENT_FILE_KINDS:
        raise ValueError(f"{file}: use a .csv or .jsonl file (optionally gzipped).")
    bar = _Progress(path, progress, header_lines=1 if _file_kind(path) == ".csv" else 0)
    return _run(_batches(_read_event_file(path), batch_rows), write, file, bar)


def _fields(errors: dict[str, list[str]]) -> str:
    return "; ".join(f"{name}: {' '.join(messages)}" for name, messages in errors.items())
