"""Reading vectors: the k-NN API that serving calls.

Every query names one model version (the active one unless given), filters on
`model_version_id = v` and orders by a pgvector distance over `embedding::vector(d)`, the
exact expression of that version's partial vector index, so the planner uses the index.
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
from collections.abc import Collection, Iterable, Iterator, Sequence
from functools import cache
from typing import Any, NamedTuple, TypeVar

import numpy as np
from django.db import connection, connections, router
from django.db.models import Model, QuerySet
from django.db.models.sql import Query
from pgvector import Vector

from recommendations.adapters import key_order
from recommendations.conf import rec_settings
from recommendations.models import (
    ModelStatus,
    ModelVersion,
    ProductDocument,
    ProductVector,
    StoreVector,
    UserVector,
)
from recommendations.routers import vector_read_database
from recommendations.sql import array_literal, raw_connection
from recommendations.vectors.indexes import ScoreEmbedding, embedding_expression

# Seconds a process trusts its idea of the active version. Activation keeps the previous
# version's vectors, so a reader a few seconds behind still gets complete (old) answers.
ACTIVE_VERSION_TTL = 5.0
# Rows fetched beyond k (at most k more), re-sorted by their exact score: relaxed-order
# scans may return neighbours slightly out of order. Every extra row lengthens the search.
CANDIDATE_MARGIN = 10
MAX_EF_SEARCH = 1000  # pgvector's upper limit
# The key of `ModelVersion.vector_search` under which the similar-products search is tuned.
SIMILAR_SEARCH = "similar"

M = TypeVar("M", bound=Model)

_active: tuple[float, ModelVersion | None] | None = None
# Database connections whose session already has the search settings (and which lengths).
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
    *,
    from_items: bool = False,
    store_id: str | None = None,
) -> list[tuple[str, float]]:
    """The k products with the highest `vector . item + bias`, best first.

    `exclude` drops products (a shopper's history); `filter_ids` restricts the candidates
    (a category, products in stock); `store_id` to one store's products, by their search
    documents, in the same statement (PostgreSQL reads a small store's through the
    documents' store index and ranks them exactly). `from_items`: the vector is made of item
    vectors (the meaning of a search's best hits), so it lies among the items and the
    shorter item search (`HNSW_EF_SEARCH`) finds its neighbours. Returns [] when no version
    is active.
    """
    return _nearest(
        ProductVector,
        "product_id",
        vector,
        k,
        version,
        exclude,
        filter_ids,
        kind="score",
        from_user=not from_items,
        store_id=store_id,
    )


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

    Returns [] when the product has no vector in that version (unknown or inactive). Its
    vector is read inside the k-NN statement: one round trip.
    """
    return _similar(product_id, k, version, exclude, filter_ids)


def similar_products_with_titles(
    product_id: str, k: int = 10, version: ModelVersion | None = None
) -> list[tuple[str, float, float]]:
    """`similar_products`, each with the trigram similarity of its title to the product's
    title (their search documents; 0 where either has none), in the same statement."""
    return _similar(product_id, k, version, titles=True)


def _similar(
    product_id: str,
    k: int,
    version: ModelVersion | None,
    exclude: Collection[str] = (),
    filter_ids: Collection[str] | None = None,
    *,
    titles: bool = False,
) -> list[tuple[Any, ...]]:
    return _nearest(
        ProductVector,
        "product_id",
        None,
        k,
        version,
        {*exclude, product_id},
        filter_ids,
        kind="cosine",
        from_user=False,
        seed=product_id,
        titles=titles,
    )


def product_vectors(ids: Iterable[str], version: ModelVersion | None = None) -> dict[str, ItemVector]:
    """Embedding and bias of each product that has a vector (missing ids are left out)."""
    version = version or active_version()
    if version is None:
        return {}
    keys = [str(i) for i in ids]
    if not keys:
        return {}
    rows = _fetch(_rows_sql(ProductVector, "product_id", "bias"), [version.pk, array_literal(keys)])
    return {pid: ItemVector(parse_vector(embedding), bias) for pid, embedding, bias in rows}


def user_vector(user_id: int, version: ModelVersion | None = None) -> np.ndarray | None:
    """The user's vector as of the version's training (None if the user had no history)."""
    version = version or active_version()
    if version is None:
        return None
    rows = _fetch(_rows_sql(UserVector, "user_id"), [version.pk, array_literal([user_id])])
    return parse_vector(rows[0][1]) if rows else None


def vector_chunks(
    version: ModelVersion, model: type[Model], key: str, size: int = 50_000
) -> Iterator[tuple[list[Any], np.ndarray, np.ndarray]]:
    """Every row of `version` in a vector table, `size` rows at a time from a server-side
    cursor on the default database (batch work, not serving): keys, vectors, biases."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.chunked_cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(key)}, vector_send(embedding), bias FROM {table} "
            "WHERE model_version_id = %s",
            [version.pk],
        )
        while rows := cursor.fetchmany(size):
            yield (
                [row[0] for row in rows],
                np.stack([parse_vector(row[1]) for row in rows]),
                np.array([row[2] for row in rows], dtype=np.float32),
            )


def parse_vector(sent: bytes) -> np.ndarray:
    """pgvector's binary form (`vector_send`: two int16 headers, then big-endian float32s).

    Four times cheaper to read than the text form, which costs ~25 us per 64-d vector to parse.
    """
    return np.frombuffer(sent, dtype=">f4", offset=4).astype(np.float32)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Each row scaled to length 1 (a zero row stays zero): cosine similarity as a dot product."""
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-9)


def _fetch(sql: str, params: Sequence[Any]) -> list[tuple]:
    with connections[vector_read_database()].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _quote(name: str) -> str:
    return connections[vector_read_database()].ops.quote_name(name)


# Reads on the request path are written once per shape rather than built by the ORM on every
# call: building and compiling a k-NN queryset cost 1.3-1.8 ms of CPU against 0.4 ms for
# running it (docs/benchmarks.md). Keys travel as one array literal (`= ANY(%s)`, `sql.array_literal`).
@cache
def _rows_sql(model: type[Model], key: str, *extra: str) -> str:
    """Key, embedding in binary (and `extra` columns) of one version's rows whose key is in a list."""
    columns = ", ".join([_quote(key), f"vector_send({_quote('embedding')})", *map(_quote, extra)])
    return (
        f"SELECT {columns} FROM {_quote(model._meta.db_table)} "
        f"WHERE {_quote('model_version_id')} = %s AND {_quote(key)} = ANY(%s)"
    )


@cache
def _knn_sql(
    model: type[Model],
    key: str,
    dimensions: int,
    kind: str,
    filtered: bool,
    excluded: bool,
    seeded: bool = False,
    in_store: bool = False,
) -> str:
    """One version's k nearest rows to `%s::vector`, by the expression of its vector index.

    `in_store`: only products whose search document names a store (one more parameter).

    `seeded`: to the vector of one of the version's own rows instead, read by a subquery that
    PostgreSQL runs once before the index scan (params: version, key); NULL when it has none.

    The indexed expression is compiled from the very objects the index is built from
    (`indexes.ScoreEmbedding`, `indexes.embedding_expression`), so the two cannot drift apart;
    the version id is bound on the client, so the partial index's predicate matches
    (tests/pipeline/test_vectors.py checks the plan).
    """
    connection = connections[vector_read_database()]
    query = Query(model)
    expression = ScoreEmbedding(dimensions) if kind == "score" else embedding_expression(dimensions)
    indexed, _ = query.get_compiler(connection=connection).compile(expression.resolve_expression(query))
    operator = "<=>" if kind == "cosine" else "<#>"
    where = [f"{_quote('model_version_id')} = %s"]
    if filtered:
        where.append(f"{_quote(key)} = ANY(%s)")
    if in_store:
        documents, store = _quote(ProductDocument._meta.db_table), _quote("store_id")
        where.append(f"{_quote(key)} IN (SELECT {_quote('product_id')} FROM {documents} WHERE {store} = %s)")
    if excluded:
        where.append(f"NOT ({_quote(key)} = ANY(%s))")
    table = _quote(model._meta.db_table)
    target = (
        f"(SELECT {_quote('embedding')} FROM {table} WHERE {where[0]} AND {_quote(key)} = %s)"
        if seeded
        else "%s::vector"
    )
    return (
        f"SELECT {_quote(key)}, {indexed} {operator} {target} AS distance "
        f"FROM {table} WHERE {' AND '.join(where)} ORDER BY distance LIMIT %s"
    )


@cache
def _with_title_similarity(knn_sql: str) -> str:
    """`knn_sql`'s rows, each with the trigram similarity of its product's title to the title
    of the product named by one more parameter (their search documents)."""
    documents, key, title = (_quote(name) for name in (ProductDocument._meta.db_table, "product_id", "title"))
    return (
        f"SELECT near.*, COALESCE(similarity(document.{title}, seed.{title}), 0) FROM ({knn_sql}) near "
        f"LEFT JOIN {documents} document ON document.{key} = near.{key} "
        f"LEFT JOIN {documents} seed ON seed.{key} = %s"
    )


def _search_settings(alias: str, ef_search: int | None, probes: int | None) -> None:
    """Search lengths (`hnsw.ef_search`, `ivfflat.probes`; None: the query's index does not
    read it) and iterative index scans for the session of `alias`'s connection.

    Iterative scans (relaxed order: the pool is re-sorted here anyway) keep walking the graph
    or scanning lists until enough rows pass the filters, so exclusions and `filter_ids` still
    yield k rows and a pool larger than ef_search is filled. Set in autocommit mode once per
    connection, and again only when a query needs another length than the session has (a SET
    per query would cost round trips; the score and the cosine searches read different
    settings, so a mix of them switches nothing); inside a transaction, for that transaction
    only, since a rollback would undo a session-level SET.
    """
    connection = connections[alias]
    raw = raw_connection(connection)
    local = connection.in_atomic_block
    session = {} if local else _tuned.get(raw, {})
    wanted = {"hnsw.iterative_scan": "relaxed_order", "ivfflat.iterative_scan": "relaxed_order"}
    if ef_search is not None:
        wanted["hnsw.ef_search"] = str(min(ef_search, MAX_EF_SEARCH))
    if probes is not None:
        wanted["ivfflat.probes"] = str(probes)
    changes = {name: value for name, value in wanted.items() if session.get(name) != value}
    if not changes:
        return
    calls = ", ".join("set_config(%s, %s, %s)" for _ in changes)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {calls}", [p for item in changes.items() for p in (*item, local)])
    if not local:
        _tuned[raw] = {**session, **changes}


def _nearest(
    model: type[ProductVector] | type[StoreVector],
    key: str,
    vector: np.ndarray | Iterable[float] | None,
    k: int,
    version: ModelVersion | None,
    exclude: Collection[str],
    filter_ids: Collection[str] | None,
    *,
    kind: str,
    from_user: bool = True,
    seed: str | None = None,
    titles: bool = False,
    store_id: str | None = None,
) -> list[tuple[Any, ...]]:
    """k-NN on one version's rows. `kind`: "score" (user . item + bias), "inner" (inner
    product) or "cosine". A user's query on the score index searches as long as tuned for the
    version (`ModelVersion.vector_search`, see `recommendations.vectors.tuning`), else with
    the settings' lengths; "similar products" as tuned for the version too; other queries from
    among the items search with `HNSW_EF_SEARCH`.
    `seed` (instead of `vector`): the key of the row whose vector is the query; `titles`: each
    row also carries its title's similarity to the seed's (`_with_title_similarity`)."""
    version = version or active_version()
    if version is None or k <= 0:
        return []
    if filter_ids is not None and not filter_ids:
        return []
    if seed is None:
        query = np.asarray(vector, dtype=np.float32).ravel()
        if query.shape != (version.dimensions,) or not np.isfinite(query).all():
            raise ValueError(
                f"The query vector must have {version.dimensions} finite numbers (model version "
                f"{version.pk}); got shape {query.shape}."
            )
        if kind == "score":
            query = np.append(query, 1.0)
        target: list[Any] = [Vector(query).to_text()]
    else:
        target = [version.pk, seed]
    alias = vector_read_database()
    # The score and the similar-products indexes may each be IVFFlat or HNSW, as the version's
    # tuning recorded (an older version's cosine index is HNSW), with tuned search lengths.
    ef_search = rec_settings.HNSW_EF_SEARCH_FOR_USERS if from_user else rec_settings.HNSW_EF_SEARCH
    if kind == "score":
        tuned, index = version.vector_search, version.vector_search.get("index")
        if from_user:  # item-to-item queries on it keep the settings' length
            ef_search = tuned.get("ef_search", ef_search)
    elif kind == "cosine":
        tuned = version.vector_search.get(SIMILAR_SEARCH, {})
        index, ef_search = tuned.get("index", "hnsw"), tuned.get("ef_search", ef_search)
    else:
        tuned, index = {}, "hnsw"
    probes = tuned.get("probes", rec_settings.IVFFLAT_PROBES)
    _search_settings(alias, None if index == "ivfflat" else ef_search, None if index == "hnsw" else probes)
    sql = _knn_sql(
        model,
        key,
        version.dimensions,
        kind,
        filter_ids is not None,
        bool(exclude),
        seed is not None,
        store_id is not None,
    )
    params: list[Any] = [*target, version.pk]
    params += [array_literal(filter_ids)] if filter_ids else []
    params += [store_id] if store_id is not None else []
    params += [array_literal(exclude)] if exclude else []
    params.append(k + min(k, CANDIDATE_MARGIN))
    if titles:
        sql, params = _with_title_similarity(sql), [*params, seed]
    found = _fetch(sql, params)
    if found and found[0][1] is None:  # the seed has no vector in this version
        return []
    # <#> is the negative inner product; <=> is 1 - cosine similarity.
    scored = [(str(pk), 1.0 - dist if kind == "cosine" else -dist, *rest) for pk, dist, *rest in found]
    # Equal scores in key order: the index returns ties in whatever order its pages hold them,
    # and an answer must not change with that.
    scored.sort(key=lambda row: (-row[1], key_order(row[0])))
    return scored[:k]
