"""Reading vectors: the k-NN API that serving calls.

Every query names one model version (the active one unless given), filters on
`model_version_id = v` and orders by a pgvector distance over `embedding::vector(d)`, the
exact expression of that version's partial HNSW index, so the planner uses the index.
Filtered queries run with pgvector's iterative index scans, so a filter that rejects most
neighbours still returns k rows.

Scores: `nearest_products` returns user . item + item bias (higher is better), searched on
the version's index of [item, bias] with the query [user, 1] (`indexes.ScoreEmbedding`);
`nearest_stores` returns user . store; `similar_products` returns cosine similarity.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Collection, Iterable
from typing import NamedTuple

import numpy as np
from django.db import connection
from django.db.models import QuerySet
from pgvector.django import CosineDistance, MaxInnerProduct

from recommendations.conf import rec_settings
from recommendations.models import ModelStatus, ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.vectors.indexes import ScoreEmbedding, embedding_expression

# Seconds a process trusts its idea of the active version. Activation keeps the previous
# version's vectors, so a reader a few seconds behind still gets complete (old) answers.
ACTIVE_VERSION_TTL = 5.0
# Candidates fetched per answer row, re-sorted by their exact score.
CANDIDATE_FACTOR = 2
MAX_EF_SEARCH = 1000  # pgvector's upper limit

_active: tuple[float, ModelVersion | None] | None = None
# Database connections whose session already has the search settings (and which ef_search).
_tuned: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class ItemVector(NamedTuple):
    embedding: np.ndarray
    bias: float


def active_version(*, fresh: bool = False) -> ModelVersion | None:
    """The version serving now (None before the first activation), cached for a few seconds."""
    global _active
    now = time.monotonic()
    if fresh or _active is None or now - _active[0] > ACTIVE_VERSION_TTL:
        _active = (now, ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first())
    return _active[1]


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
    rows = ProductVector.objects.filter(model_version_id=version.pk, product_id__in=[str(i) for i in ids])
    return {
        pid: ItemVector(np.asarray(emb, dtype=np.float32), bias)
        for pid, emb, bias in rows.values_list("product_id", "embedding", "bias")
    }


def user_vector(user_id: int, version: ModelVersion | None = None) -> np.ndarray | None:
    """The user's vector as of the version's training (None if the user had no history)."""
    version = version or active_version()
    if version is None:
        return None
    row = UserVector.objects.filter(model_version_id=version.pk, user_id=user_id).values_list(
        "embedding", flat=True
    )
    embedding = row.first()
    return None if embedding is None else np.asarray(embedding, dtype=np.float32)


def _search_settings() -> None:
    """`hnsw.ef_search` and iterative index scans for this database session.

    Iterative scans (relaxed order: the pool is re-sorted here anyway) keep walking the graph
    until enough rows pass the filters, so exclusions and `filter_ids` still yield k rows and
    a pool larger than ef_search is filled. Set once per connection in autocommit mode (a SET
    per query would cost round trips); inside a transaction, for that transaction only,
    since a rollback would undo a session-level SET.
    """
    connection.ensure_connection()
    ef_search = str(min(rec_settings.HNSW_EF_SEARCH, MAX_EF_SEARCH))
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
    rows: QuerySet = model.objects.filter(model_version_id=version.pk)
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
    _search_settings()
    # A few more than k: relaxed-order scans may return neighbours slightly out of order.
    found = rows[: k * CANDIDATE_FACTOR]
    # <#> is the negative inner product; <=> is 1 - cosine similarity.
    scored = [(pk, 1.0 - dist if kind == "cosine" else -dist) for pk, dist in found]
    scored.sort(key=lambda pair: pair[1], reverse=True)
    return scored[:k]
