"""Reading vectors: the k-NN API that serving calls.

Every query names one model version (the active one unless given), filters on
`model_version_id = v` and orders by a pgvector distance over `embedding::vector(d)`, the
exact expression of that version's partial HNSW index, so the planner uses the index.
Filtered queries run with pgvector's iterative index scans, so a filter that rejects most
neighbours still returns k rows.

Scores: `nearest_products` returns user . item + item bias (higher is better), searched on
the version's index of [item, bias] with the query [user, 1] (`indexes.ScoreEmbedding`);
`nearest_stores` returns user . store; `similar_products` returns cosine similarity.

Database: every read here goes to `routers.vector_read_database()`, a read replica when
`RECOMMENDATIONS["VECTOR_READ_DATABASE"]` names one (see `recommendations.routers` for why a
lagging replica never serves a version whose rows it lacks). `active_version(fresh=True)` is
the pipeline's question ("what is active now?") and asks the primary.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Collection, Iterable
from typing import NamedTuple, TypeVar

import numpy as np
from django.db import connections, router
from django.db.models import Model, QuerySet
from pgvector.django import CosineDistance, MaxInnerProduct

from recommendations.conf import rec_settings
from recommendations.models import ModelStatus, ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.routers import vector_read_database
from recommendations.vectors.indexes import ScoreEmbedding, embedding_expression

# Seconds a process trusts its idea of the active version. Activation keeps the previous
# version's vectors, so a reader a few seconds behind still gets complete (old) answers.
ACTIVE_VERSION_TTL = 5.0
# Candidates fetched per answer row, re-sorted by their exact score.
CANDIDATE_FACTOR = 2
MAX_EF_SEARCH = 1000  # pgvector's upper limit

M = TypeVar("M", bound=Model)

_active: tuple[float, ModelVersion | None] | None = None
# Database connections whose session already has the search settings (and which ef_search).
_tuned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ItemVector(NamedTuple):
    embedding: np.ndarray
    bias: float


def active_version(*, fresh: bool = False) -> ModelVersion | None:
    """The version serving now (None before the first activation), cached for a few seconds.

    Read from the same database as the vectors, so it is a version whose rows that database
    has. `fresh=True` (the pipeline, about to write) reads the primary now; its answer is
    cached only when serving reads the primary too, since a replica may not have it yet.
    """
    global _active
    now = time.monotonic()
    if fresh:
        primary = router.db_for_write(ModelVersion)
        version = _load_active(primary)
        if primary == vector_read_database():
            _active = (now, version)
        return version
    if _active is None or now - _active[0] > ACTIVE_VERSION_TTL:
        _active = (now, _load_active(vector_read_database()))
    return _active[1]


def _load_active(alias: str) -> ModelVersion | None:
    return ModelVersion.objects.using(alias).filter(status=ModelStatus.ACTIVE).first()


def vector_rows(model: type[M]) -> QuerySet[M]:
    """All rows of a vector model on the database serving reads vectors from."""
    return model.objects.using(vector_read_database())


def clear_cache() -> None:
    """Forget the cached active version (called on commit of an activation)."""
    global _active
    _active = None


def nearest_products(
    vector: np.ndarray | Iterable[float],
    k: int = 10,
    version: ModelVersion | None = None,
    exclude: Collection[str] = (),
    filter_ids: Collection[str] | None = None,
) -> list[tuple[str, float]]:
    """The k products with the highest `vector . item + bias`, best first.

    `exclude` drops products (a shopper's history); `filter_ids` restricts the candidates
    (a category, products in stock). Returns [] when no version is active.
    """
    return _nearest(ProductVector, "product_id", vector, k, version, exclude, filter_ids, kind="score")


def nearest_stores(
    vector: np.ndarray | Iterable[float],
    k: int = 10,
    version: ModelVersion | None = None,
    exclude: Collection[str] = (),
    filter_ids: Collection[str] | None = None,
) -> list[tuple[str, float]]:
    """The k stores with the highest `vector . store`, best first (store ids as strings)."""
    return _nearest(StoreVector, "store_id", vector, k, version, exclude, filter_ids, kind="inner")


def similar_products(
    product_id: str,
    k: int = 10,
    version: ModelVersion | None = None,
    exclude: Collection[str] = (),
    filter_ids: Collection[str] | None = None,
) -> list[tuple[str, float]]:
    """Products whose vectors point the same way as `product_id`'s (cosine similarity).

    Returns [] when the product has no vector in that version (unknown or inactive).
    """
    version = version or active_version()
    if version is None:
        return []
    found = product_vectors([product_id], version)
    if product_id not in found:
        return []
    return _nearest(
        ProductVector,
        "product_id",
        found[product_id].embedding,
        k,
        version,
        {*exclude, product_id},
        filter_ids,
        kind="cosine",
    )


def product_vectors(ids: Iterable[str], version: ModelVersion | None = None) -> dict[str, ItemVector]:
    """Embedding and bias of each product that has a vector (missing ids are left out)."""
    version = version or active_version()
    if version is None:
        return {}
    keys = [str(i) for i in ids]
    rows = vector_rows(ProductVector).filter(model_version_id=version.pk, product_id__in=keys)
    return {
        pid: ItemVector(np.asarray(emb, dtype=np.float32), bias)
        for pid, emb, bias in rows.values_list("product_id", "embedding", "bias")
    }


def user_vector(user_id: int, version: ModelVersion | None = None) -> np.ndarray | None:
    """The user's vector as of the version's training (None if the user had no history)."""
    version = version or active_version()
    if version is None:
        return None
    row = (
        vector_rows(UserVector)
        .filter(model_version_id=version.pk, user_id=user_id)
        .values_list("embedding", flat=True)
    )
    embedding = row.first()
    return None if embedding is None else np.asarray(embedding, dtype=np.float32)


def _search_settings(alias: str, ef_search: int) -> None:
    """`hnsw.ef_search` and iterative index scans for the session of `alias`'s connection.

    Iterative scans (relaxed order: the pool is re-sorted here anyway) keep walking the graph
    until enough rows pass the filters, so exclusions and `filter_ids` still yield k rows and
    a pool larger than ef_search is filled. Set once per connection in autocommit mode (a SET
    per query would cost round trips; a page that mixes user and item queries switches at
    most a few times); inside a transaction, for that transaction only,
    since a rollback would undo a session-level SET.
    """
    connection = connections[alias]
    connection.ensure_connection()
    ef_search = str(min(ef_search, MAX_EF_SEARCH))
    local = connection.in_atomic_block
    raw = connection.connection
    if not local and _tuned.get(raw) == ef_search:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT set_config('hnsw.ef_search', %s, %s), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', %s)",
            [ef_search, local, local],
        )
    if not local:
        _tuned[raw] = ef_search


def _nearest(
    model: type[ProductVector] | type[StoreVector],
    key: str,
    vector: np.ndarray | Iterable[float],
    k: int,
    version: ModelVersion | None,
    exclude: Collection[str],
    filter_ids: Collection[str] | None,
    *,
    kind: str,
) -> list[tuple[str, float]]:
    """k-NN on one version's rows. `kind`: "score" (user . item + bias), "inner" (inner
    product) or "cosine"."""
    version = version or active_version()
    if version is None or k <= 0:
        return []
    query = np.asarray(vector, dtype=np.float32).ravel()
    if query.shape != (version.dimensions,) or not np.isfinite(query).all():
        raise ValueError(
            f"The query vector must have {version.dimensions} finite numbers (model version "
            f"{version.pk}); got shape {query.shape}."
        )
    rows: QuerySet = vector_rows(model).filter(model_version_id=version.pk)
    if filter_ids is not None:
        if not filter_ids:
            return []
        rows = rows.filter(**{f"{key}__in": [str(i) for i in filter_ids]})
    if exclude:
        rows = rows.exclude(**{f"{key}__in": [str(i) for i in exclude]})
    plain = embedding_expression(version.dimensions)
    if kind == "score":
        order = MaxInnerProduct(ScoreEmbedding(version.dimensions), np.append(query, 1.0))
    elif kind == "cosine":
        order = CosineDistance(plain, query)
    else:
        order = MaxInnerProduct(plain, query)
    rows = rows.annotate(distance=order).order_by("distance").values_list(key, "distance")
    # A user's vector (for-you, stores) needs a longer search than an item's (similar products).
    from_user = kind != "cosine"
    _search_settings(
        rows.db, rec_settings.HNSW_EF_SEARCH_FOR_USERS if from_user else rec_settings.HNSW_EF_SEARCH
    )
    # A few more than k: relaxed-order scans may return neighbours slightly out of order.
    found = rows[: k * CANDIDATE_FACTOR]
    # <#> is the negative inner product; <=> is 1 - cosine similarity.
    scored = [(pk, 1.0 - dist if kind == "cosine" else -dist) for pk, dist in found]
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[:k]
