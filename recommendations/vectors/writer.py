"""Bulk writes of product, store and user vectors with PostgreSQL's binary COPY.

A model version's vectors are written once, after training, by the thousands or millions:
row-by-row ORM saves would take hours and `bulk_create` still formats every float as text.
The rows are encoded straight from numpy into COPY's binary format (no Python loop per row)
and streamed through psycopg 3's `cursor.copy()`.

Every write is idempotent: rows of the version (or of the given keys) are deleted and the
new rows copied in ONE transaction, so a task that is killed and retried leaves neither
duplicates nor a half-written version, and concurrent readers see the old rows until commit.
"""

from __future__ import annotations

import datetime as dt
import logging
import struct
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db import connection, transaction
from psycopg import sql
from psycopg.errors import UniqueViolation

from recommendations.models import ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.models.vectors import VectorBase

logger = logging.getLogger(__name__)

# Rows per COPY buffer: bounds memory at about CHUNK_ROWS * (4 * dimensions + 60) bytes.
CHUNK_ROWS = 50_000
_COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)


# Binary COPY wants each key in its column's wire format.
_INTEGER_TYPES = {"smallint": ">i2", "integer": ">i4", "bigint": ">i8"}


@dataclass(frozen=True)
class VectorTable:
    """Which model a write goes to, by which key column (product, store or user)."""

    model: type[VectorBase]
    key_field: str

    @property
    def key_column(self) -> str:
        return self.model._meta.get_field(self.key_field).column

    def encode_keys(self, keys: Sequence[Any]) -> list[bytes] | np.ndarray:
        """Keys as COPY BINARY values: a numpy array for integer columns (users of most
        projects), else one bytes object per key (uuid: 16 bytes; text: UTF-8)."""
        field = self.model._meta.get_field(self.key_field)
        db_type = (field.target_field if field.is_relation else field).db_type(connection)
        if db_type in _INTEGER_TYPES:
            return np.asarray(keys, dtype=_INTEGER_TYPES[db_type])
        if db_type == "uuid":
            return [uuid.UUID(str(k)).bytes for k in keys]
        encoded = [str(k).encode("utf-8") for k in keys]
        if not all(encoded):
            raise ValueError("Keys must not be empty.")
        return encoded


PRODUCTS = VectorTable(ProductVector, "product_id")
STORES = VectorTable(StoreVector, "store_id")
USERS = VectorTable(UserVector, "user")


def write_product_vectors(
    version: ModelVersion,
    product_ids: Sequence[str],
    embeddings: np.ndarray,
    biases: np.ndarray | None = None,
    *,
    replace_all: bool = True,
    as_of: dt.datetime | None = None,
) -> int:
    """Write the vectors of products (host primary keys as strings); returns the row count.

    `replace_all` replaces every product vector of `version` (a full embed); otherwise only
    the rows of `product_ids` are replaced (embedding new or changed products). `as_of` is
    when the products were read (`sql.read_as_of`; now when None), stored as each row's
    `updated_at`: a product saved after it has a stale vector (`embedding.sync_all_products`).
    """
    return write_vectors(
        PRODUCTS, version, product_ids, embeddings, biases, replace_all=replace_all, as_of=as_of
    )


def write_store_vectors(
    version: ModelVersion,
    store_ids: Sequence[str],
    embeddings: np.ndarray,
    *,
    replace_all: bool = True,
    as_of: dt.datetime | None = None,
) -> int:
    """Write the vectors of stores; see `write_product_vectors`."""
    return write_vectors(STORES, version, store_ids, embeddings, None, replace_all=replace_all, as_of=as_of)


def write_user_vectors(
    version: ModelVersion,
    user_ids: Sequence[int],
    embeddings: np.ndarray,
    *,
    replace_all: bool = True,
    as_of: dt.datetime | None = None,
) -> int:
    """Write the vectors of users (primary keys of the user model); see `write_product_vectors`."""
    return write_vectors(USERS, version, user_ids, embeddings, None, replace_all=replace_all, as_of=as_of)


def write_vectors(
    table: VectorTable,
    version: ModelVersion,
    keys: Sequence[Any],
    embeddings: np.ndarray,
    biases: np.ndarray | None = None,
    *,
    replace_all: bool = True,
    as_of: dt.datetime | None = None,
) -> int:
    """Delete-then-COPY `keys`' vectors of `version` in one transaction, each row's
    `updated_at` set to `as_of` (now when None).

    Bad input (shape mismatch, NaN, wrong dimension) raises `ValueError` before anything is
    written; duplicate keys are caught by the table's unique key and roll the write back.
    """
    embeddings, biases, encoded = _validate(table, version, keys, embeddings, biases)
    started = time.perf_counter()
    try:
        deleted = _replace(table, version, keys, encoded, embeddings, biases, replace_all, as_of)
    except UniqueViolation as exc:  # checking 1M keys in Python would cost a second
        raise ValueError(
            "Each key may appear only once in a vector write (found duplicates); nothing was written."
        ) from exc
    seconds = time.perf_counter() - started
    logger.info(
        "Wrote %d %s vectors of model version %s (%d replaced) in %.2fs (%.0f rows/s)",
        len(encoded),
        table.model._meta.model_name.removesuffix("vector"),
        version.pk,
        deleted,
        seconds,
        len(encoded) / seconds if seconds else 0.0,
    )
    return len(encoded)


def _replace(
    table: VectorTable,
    version: ModelVersion,
    keys: Sequence[Any],
    encoded: list[bytes] | np.ndarray,
    embeddings: np.ndarray,
    biases: np.ndarray,
    replace_all: bool,
    as_of: dt.datetime | None,
) -> int:
    """Delete the old rows and COPY the new ones in one transaction; returns the rows deleted."""
    model = table.model
    columns = ("model_version_id", "bias", "updated_at", "embedding", table.key_column)
    copy_sql = sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
        sql.Identifier(model._meta.db_table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    stamp = as_of or dt.datetime.now(dt.UTC)
    stamp_us = (stamp - _PG_EPOCH) // dt.timedelta(microseconds=1)
    with transaction.atomic():
        stale = model.objects.filter(model_version_id=version.pk)
        if not replace_all:
            stale = stale.filter(**{f"{table.key_field}__in": list(keys)})
        deleted, _ = stale.delete()
        with connection.cursor() as cursor, cursor.cursor.copy(copy_sql) as copy:
            copy.write(_COPY_HEADER)
            for block in encode_rows(version.pk, encoded, embeddings, biases, stamp_us):
                copy.write(block)
            copy.write(_COPY_TRAILER)
    return deleted


def _validate(
    table: VectorTable,
    version: ModelVersion,
    keys: Sequence[Any],
    embeddings: np.ndarray,
    biases: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, list[bytes] | np.ndarray]:
    if version.pk is None:
        raise ValueError("Save the model version before writing its vectors.")
    embeddings = np.asarray(embeddings, dtype=np.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] != len(keys):
        raise ValueError(
            f"Expected one embedding row per key ({len(keys)} keys), got an array of shape "
            f"{embeddings.shape}."
        )
    if version.dimensions and embeddings.shape[1] != version.dimensions:
        raise ValueError(
            f"Model version {version.pk} has {version.dimensions}-dimensional vectors, "
            f"got {embeddings.shape[1]} dimensions."
        )
    biases = np.zeros(len(keys), np.float64) if biases is None else np.asarray(biases, np.float64)
    if biases.shape != (len(keys),):
        raise ValueError(f"Expected one bias per key ({len(keys)}), got shape {biases.shape}.")
    if not (np.isfinite(embeddings).all() and np.isfinite(biases).all()):
        raise ValueError("Embeddings and biases must be finite numbers (found NaN or infinity).")
    return embeddings, biases, table.encode_keys(keys)


def encode_rows(
    version_id: int,
    keys: list[bytes] | np.ndarray,
    embeddings: np.ndarray,
    biases: np.ndarray,
    updated_us: int,
    chunk_rows: int = CHUNK_ROWS,
) -> Iterator[bytes]:
    """COPY BINARY tuples (without header/trailer) of (version, bias, updated_at, vector, key).

    Rows with keys of equal byte length have equal size, so each group is one numpy structured
    array whose `tobytes()` is exactly the wire format; text keys are grouped by length.
    Row order does not matter to COPY.
    """
    n, dims = embeddings.shape
    if isinstance(keys, np.ndarray):  # integer keys: every row has the same layout
        groups = [(np.arange(n), keys, keys.dtype.itemsize, keys.dtype.str)]
    else:
        lengths = np.fromiter((len(k) for k in keys), dtype=np.int64, count=n)
        groups = []
        for length in np.unique(lengths):
            rows = np.flatnonzero(lengths == length)
            groups.append((rows, np.array([keys[i] for i in rows], dtype=f"S{length}"), int(length), None))
    for rows, group_keys, key_len, key_type in groups:
        dtype = np.dtype(
            [
                ("nfields", ">i2"),
                ("l_version", ">i4"),
                ("version", ">i8"),
                ("l_bias", ">i4"),
                ("bias", ">f8"),
                ("l_updated", ">i4"),
                ("updated", ">i8"),
                ("l_vector", ">i4"),
                ("dims", ">i2"),
                ("unused", ">i2"),
                ("vector", ">f4", (dims,)),
                ("l_key", ">i4"),
                ("key", key_type or f"S{key_len}"),
            ]
        )
        for start in range(0, len(rows), chunk_rows):
            part = rows[start : start + chunk_rows]
            block = np.empty(len(part), dtype=dtype)
            block["nfields"] = 5
            block["l_version"] = 8
            block["version"] = version_id
            block["l_bias"] = 8
            block["bias"] = biases[part]
            block["l_updated"] = 8
            block["updated"] = updated_us
            block["l_vector"] = 4 + 4 * dims
            block["dims"] = dims
            block["unused"] = 0
            block["vector"] = embeddings[part]
            block["l_key"] = key_len
            block["key"] = group_keys[start : start + chunk_rows]
            yield block.tobytes()
