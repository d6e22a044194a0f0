"""Per-version vector indexes on the vector tables, built after the bulk load.

The vector columns have no fixed dimension (it belongs to the model version), so each
version gets partial indexes on `embedding::vector(d)` restricted to its own rows::

    HnswIndex(OpClass(Cast("embedding", VectorField(dimensions=d)), name="vector_cosine_ops"),
              condition=Q(model_version_id=v), m=16, ef_construction=64)

Queries (`recommendations.vectors.queries`) use the same expression and filter, which lets
the planner pick that version's index. Building an index after COPY is several times faster
than inserting into an existing one, and a version that is being written has no readers yet.

Products are ranked for a user by score = user . item + bias, so their inner-product index
is on `ScoreEmbedding`, [item, bias]: for the query [user, 1] the index orders by the exact
score (the learning core folds the bias the same way), with no re-ranking afterwards. That
index is HNSW or IVFFlat (`SCORE_INDEX`; "auto" picks per version, see
`recommendations.vectors.tuning`): when users' vectors lie between the clusters of what they
like, scanning the nearest lists whole finds their best products sooner than a graph walk;
when they lie among the items, as a trained model's do, the graph is faster
(docs/benchmarks.md). Either way its search length is tuned per version on the version's own
users. Similar products' cosine index is chosen the same way (`SIMILAR_INDEX`), stores'
index is HNSW.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.contrib.postgres.indexes import OpClass
from django.db import connection
from django.db.models import F, Func, Q
from django.db.models.functions import Cast
from pgvector.django import HnswIndex, IvfflatIndex, VectorField

from recommendations.conf import rec_settings
from recommendations.locks import advisory_lock
from recommendations.models import ModelVersion, ProductVector, StoreVector
from recommendations.models.vectors import VectorBase

logger = logging.getLogger(__name__)

HNSW_M = 16
# Candidate list while building the graph. Item-to-item (cosine) queries start inside the data
# and reach recall 0.98 on a 64-wide build; users' queries lie between the items' clusters and
# rank by inner product, which needs a denser graph and a longer search (recall@10 at 100k
# clustered products, ef_search 400: 0.75 built at 64, 0.87 at 128, for 1.3x the build time;
# 1.0 at 128 with ef_search 800; docs/benchmarks.md).
HNSW_EF_CONSTRUCTION = 64
HNSW_EF_CONSTRUCTION_SCORE = 128
MAX_IVFFLAT_LISTS = 32768  # pgvector's upper limit
# HNSW builds are several times faster while the graph fits in maintenance_work_mem
# (1M x 64-dim vectors need about 1 GB); parallel workers help on larger machines.
BUILD_SETTINGS = {"maintenance_work_mem": "1GB", "max_parallel_maintenance_workers": "1"}


class IndexBuildInProgress(Exception):
    """Another connection is building this index now; the message says which and what to do."""


@contextmanager
def build_lock(version_id: int) -> Iterator[None]:
    """Hold the version's index lock: one process at a time builds, drops or tunes the
    indexes of a version (two activations, or an activation and a retrain, of the same
    version); the second waits, then finds the indexes built."""
    with advisory_lock(f"recommendations.indexes.{version_id}", wait=True):
        yield


@dataclass(frozen=True)
class IndexSpec:
    """One kind of per-version index: which table, which distance, a short name, and
    whether it indexes the score embedding rather than the plain one."""

    model: type[VectorBase]
    opclass: str
    short: str
    score: bool = False
    ef_construction: int = HNSW_EF_CONSTRUCTION
    #: The setting that chooses HNSW or IVFFlat for it (None: always HNSW).
    kind_setting: str | None = None


# Products for a user: inner product on the score embedding (see above); similar products:
# cosine of the plain vectors, where length must not count; stores: plain inner product.
INDEX_SPECS = (
    IndexSpec(
        ProductVector,
        "vector_ip_ops",
        "product_score",
        score=True,
        ef_construction=HNSW_EF_CONSTRUCTION_SCORE,
        kind_setting="SCORE_INDEX",
    ),
    IndexSpec(ProductVector, "vector_cosine_ops", "product_cos", kind_setting="SIMILAR_INDEX"),
    IndexSpec(StoreVector, "vector_ip_ops", "store_ip"),
)
SCORE_SPEC, COSINE_SPEC = INDEX_SPECS[0], INDEX_SPECS[1]


def embedding_expression(dimensions: int) -> Cast:
    """`embedding::vector(d)`: the indexed expression; queries must use the very same one."""
    return Cast("embedding", VectorField(dimensions=dimensions))


class ScoreEmbedding(Func):
    """`(embedding::vector(d) || ARRAY[bias]::vector)::vector(d + 1)`: the item vector with its
    bias appended, so that its inner product with [user, 1] is the score."""

    output_field = VectorField()

    def __init__(self, dimensions: int) -> None:
        super().__init__(embedding_expression(dimensions), F("bias"))
        self.dimensions = dimensions

    def as_sql(self, compiler: Any, connection: Any, **extra: Any) -> tuple[str, list]:
        embedding, embedding_params = compiler.compile(self.source_expressions[0])
        bias, bias_params = compiler.compile(self.source_expressions[1])
        sql = f"CAST(({embedding} || ARRAY[{bias}]::vector) AS vector({self.dimensions + 1}))"
        return sql, [*embedding_params, *bias_params]


def index_name(spec: IndexSpec, version_id: int) -> str:
    return f"rec_{spec.short}_v{version_id}"


def index_kind(spec: IndexSpec, version_id: int) -> str | None:
    """ "hnsw" or "ivfflat": how the version's index of `spec` was built (None while it is not)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT am.amname FROM pg_class c JOIN pg_am am ON am.oid = c.relam WHERE c.relname = %s",
            [index_name(spec, version_id)],
        )
        row = cursor.fetchone()
    return row[0] if row else None


def ivfflat_lists(rows: int) -> int:
    """Lists of an IVFFlat index: the square root of the rows (pgvector's advice above 1M
    rows; below it, measured better than rows / 1000 at the same recall)."""
    return max(1, min(MAX_IVFFLAT_LISTS, round(math.sqrt(rows))))


def vector_index(spec: IndexSpec, version: ModelVersion, kind: str | None = None) -> HnswIndex | IvfflatIndex:
    """The index of `spec` for `version`: IVFFlat when the spec may be one and `kind` (by
    default its setting; "auto" starts with HNSW) says so, its lists sized by the version's
    rows counted now; else HNSW."""
    if spec.score:
        expression = ScoreEmbedding(version.dimensions)
    else:
        expression = embedding_expression(version.dimensions)
    # Django takes operator classes of expression indexes through OpClass, not opclasses=.
    indexed = OpClass(expression, name=spec.opclass)
    common = {"name": index_name(spec, version.pk), "condition": Q(model_version_id=version.pk)}
    if spec.kind_setting and (kind or getattr(rec_settings, spec.kind_setting)) == "ivfflat":
        rows = spec.model.objects.filter(model_version=version).count()
        return IvfflatIndex(indexed, lists=ivfflat_lists(rows), **common)
    return HnswIndex(indexed, m=HNSW_M, ef_construction=spec.ef_construction, **common)


# `<index>_ccnew`, `<index>_ccold1`, ...: what an interrupted REINDEX CONCURRENTLY leaves; the
# group is the index it copies. The same syntax in Python and in PostgreSQL's `substring`.
LEFTOVER_PATTERN = r"^(.+)_cc(?:new|old)[0-9]*$"
LEFTOVER = re.compile(LEFTOVER_PATTERN)


def existing_indexes(version_id: int) -> dict[str, bool]:
    """Names of this version's vector indexes in the database, mapped to 'is valid'.

    An interrupted `CREATE INDEX CONCURRENTLY` leaves an invalid index behind that the
    planner ignores; `build_indexes` drops and rebuilds it. An interrupted `REINDEX
    CONCURRENTLY` leaves a copy beside the index, named `<index>_ccnew` (before the swap) or
    `<index>_ccold` (after it), with a number when one was there already: those are listed
    too (`leftovers`), so that `drop_indexes` and `reindex` remove them.
    """
    names = [index_name(spec, version_id) for spec in INDEX_SPECS]
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid "
            "WHERE c.relname = ANY(%s) OR substring(c.relname FROM %s) = ANY(%s)",
            [names, LEFTOVER_PATTERN, names],
        )
        return dict(cursor.fetchall())


def leftovers(present: Iterable[str]) -> list[str]:
    """The names among `present` that an interrupted REINDEX CONCURRENTLY left behind."""
    return [name for name in present if LEFTOVER.match(name)]


def _of_index(name: str) -> str:
    """The index a name belongs to: itself, or the one a leftover was a copy of."""
    match = LEFTOVER.match(name)
    return match[1] if match else name


def build_indexes(
    version: ModelVersion, specs: Sequence[IndexSpec] = INDEX_SPECS, kind: str | None = None
) -> list[str]:
    """Create the missing vector indexes of `version`; returns the names built. `kind`
    ("hnsw", "ivfflat") overrides the settings for the specs that have a choice.

    Idempotent (valid indexes are kept). Outside a transaction the build is CONCURRENT so
    writes to other versions' rows (a product embedded on save) are not blocked meanwhile;
    inside one (tests, callers that need atomicity) it is a plain transactional build.
    """
    if not version.dimensions:
        raise ValueError(f"Model version {version.pk} has no vector dimension; train it first.")
    concurrently = not connection.in_atomic_block
    present = existing_indexes(version.pk)
    built = []
    with _build_settings(concurrently), connection.schema_editor(atomic=False) as editor:
        if not concurrently:
            # Rows copied in this transaction have deferred foreign-key checks pending, and
            # PostgreSQL refuses to build an index over a table with pending trigger events.
            editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        for spec in specs:
            name = index_name(spec, version.pk)
            if present.get(name):
                continue
            index = vector_index(spec, version, kind)
            if index.name in present:  # invalid: left by an interrupted build, or being built now
                _check_not_being_built(index.name, version.pk)
                editor.remove_index(spec.model, index, concurrently=concurrently)
            started = time.perf_counter()
            editor.add_index(spec.model, index, concurrently=concurrently)
            logger.info(
                "Built %s index %s for model version %s in %.1fs",
                index.suffix.upper(),
                index.name,
                version.pk,
                time.perf_counter() - started,
            )
            built.append(index.name)
        if not concurrently:
            editor.execute("SET CONSTRAINTS ALL DEFERRED")
        # Fresh statistics: without them the planner guesses the new version has a handful of
        # rows and sorts them exactly instead of using the index.
        for table in dict.fromkeys(spec.model._meta.db_table for spec in specs):
            editor.execute(f"ANALYZE {editor.quote_name(table)}")
    return built


def _check_not_being_built(name: str, version_id: int) -> None:
    """Refuse to drop an invalid index that another backend is building right now: it is
    invalid only until that build ends, and dropping it would deadlock with the build."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.pid FROM pg_stat_progress_create_index p JOIN pg_class c ON c.oid = p.index_relid "
            "WHERE c.relname = %s AND p.pid <> pg_backend_pid()",
            [name],
        )
        row = cursor.fetchone()
    if row:
        raise IndexBuildInProgress(
            f"Index {name} of model version {version_id} is being built right now by another "
            f"connection (PostgreSQL process {row[0]}), e.g. a retrain or another activation. Try "
            "again when it has finished."
        )


def drop_indexes(
    version: ModelVersion, specs: Sequence[IndexSpec] = INDEX_SPECS, *, only_leftovers: bool = False
) -> list[str]:
    """Drop the vector indexes of `version` (before deleting it), with any leftovers of an
    interrupted REINDEX; returns the names dropped. `only_leftovers` keeps the indexes."""
    present = existing_indexes(version.pk)
    concurrently = not connection.in_atomic_block
    dropped = []
    with connection.schema_editor(atomic=False) as editor:
        for spec in specs:
            name = index_name(spec, version.pk)
            for found in sorted(present):
                if _of_index(found) != name or (only_leftovers and found == name):
                    continue
                # Dropping needs only the name; the indexed expression is irrelevant here.
                index = HnswIndex("embedding", name=found)
                editor.remove_index(spec.model, index, concurrently=concurrently)
                dropped.append(found)
    if dropped:
        names = ", ".join(dropped)
        logger.info("Dropped %d vector index(es) of model version %s: %s", len(dropped), version.pk, names)
    return dropped


def reindex(version: ModelVersion) -> list[str]:
    """Rebuild the indexes of `version` from scratch (after many single-product updates).

    Leftovers of an earlier, interrupted REINDEX CONCURRENTLY are dropped first: each retry
    would otherwise add another `_ccnew` copy that nothing ever removes.
    """
    concurrently = not connection.in_atomic_block
    if leftovers(existing_indexes(version.pk)):
        drop_indexes(version, only_leftovers=True)
    present = existing_indexes(version.pk)
    names = [n for n in (index_name(spec, version.pk) for spec in INDEX_SPECS) if n in present]
    with _build_settings(concurrently), connection.cursor() as cursor:
        for name in names:
            started = time.perf_counter()
            option = "CONCURRENTLY " if concurrently else ""
            cursor.execute(f"REINDEX INDEX {option}{connection.ops.quote_name(name)}")
            logger.info("Reindexed %s in %.1fs", name, time.perf_counter() - started)
    return names + build_indexes(version)


@contextmanager
def _build_settings(session: bool) -> Iterator[None]:
    """Memory and parallelism for index builds: SET LOCAL in a transaction, else SET ... RESET."""
    with connection.cursor() as cursor:
        for name, value in BUILD_SETTINGS.items():
            cursor.execute("SELECT set_config(%s, %s, %s)", [name, value, not session])
    try:
        yield
    finally:
        if session and connection.connection is not None:
            with connection.cursor() as cursor:
                for name in BUILD_SETTINGS:
                    cursor.execute(f"RESET {name}")
