"""The score index's search length, tuned per model version on the version's own users.

How long an approximate search must be for a given recall depends on where the vectors lie.
The users of a trained two-tower model sit among the items they like: on Amazon Beauty,
HNSW finds 0.998 of their exact top 10 at ef_search 40. Users whose tastes lie between
distant clusters need ef_search 800 for 0.99 (docs/benchmarks.md). A fixed setting either
wastes time on every request or misses neighbours. So once a version's score index is built,
a sample of its user vectors is searched at growing lengths and compared with the exact
ranking (numpy over all of the version's product vectors); the shortest length that reaches
`SCORE_SEARCH_RECALL` is kept on the version (`ModelVersion.vector_search`) and serving
searches with it (`queries._nearest`).

The cosine index of "similar products" is tuned the same way on a sample of the version's
own products (`vector_search["similar"]`): item-to-item queries start inside the data and
need a short search at 100k products, a longer one at 1M. With "auto", either index is
compared with IVFFlat when HNSW needs a long search (`SCORE_INDEX`, `SIMILAR_INDEX`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Model

from recommendations.conf import rec_settings
from recommendations.models import ModelStatus, ModelVersion, ProductVector, UserVector
from recommendations.vectors import indexes, lists, queries

logger = logging.getLogger(__name__)

# Recall is measured on this many users / products. Per-query recall is lumpy (most find all
# 10, a few in dense clusters half), so a sample's mean wanders: five samples of 200 products
# of the 100k benchmark gave 0.979-0.995 at one ef_search, and at 1M the tuning's sample read
# 0.973 where the benchmark's read 0.947. A sample of 1,000 narrows that about 2.2 times, so
# the target's margin over the 0.95 is not spent on the draw.
SAMPLE_USERS = 1000
SAMPLE_PRODUCTS = 1000
K = 10
# Where the version keeps the tuned "similar products" search (the rest is the score search's).
SIMILAR = queries.SIMILAR_SEARCH
# Search lengths tried, shortest first: HNSW's candidate list, IVFFlat's lists scanned.
LENGTHS = {
    "hnsw": ("ef_search", (40, 100, 200, 400, 800, 1000)),
    "ivfflat": ("probes", (1, 2, 5, 10, 20, 40, 80, 160)),
}
# With SCORE_INDEX or SIMILAR_INDEX "auto", an HNSW search at least this long is compared
# with IVFFlat.
LONG_EF_SEARCH = 400
# Rows of product vectors scored at once for the exact ranking (bounds the memory used).
CHUNK = 50_000


def prepare_search(version: ModelVersion) -> list[str]:
    """Build the version's missing indexes, then tune its score search when that index was
    built now or was never tuned (with `SCORE_INDEX = "auto"`, choosing its kind too), and
    its similar-products search likewise (`SIMILAR_INDEX`); last, its precomputed lists when
    it has none (`lists.build_missing`). Returns the names of the indexes built.

    Under the version's index lock (`indexes.build_lock`), so a second caller for the same
    version waits for the first and then finds everything done; or, when a purge retired the
    version meanwhile (`activation.retire`), builds nothing on its deleted vectors.
    """
    with indexes.build_lock(version.pk):
        if ModelVersion.objects.filter(pk=version.pk, status=ModelStatus.RETIRED).exists():
            return []
        version.refresh_from_db(fields=["vector_search"])  # a caller before us may have tuned it
        return _prepare_search(version)


def _prepare_search(version: ModelVersion) -> list[str]:
    built = indexes.build_indexes(version)
    if indexes.index_name(indexes.SCORE_SPEC, version.pk) in built or "index" not in version.vector_search:
        tuned = tune_score_search(version)
        if _worth_comparing(version, indexes.SCORE_SPEC, tuned):
            _compare_with_ivfflat(version, indexes.SCORE_SPEC, tune_score_search, tuned)
    if indexes.index_name(indexes.COSINE_SPEC, version.pk) in built or SIMILAR not in version.vector_search:
        tuned = tune_similar_search(version)
        if _worth_comparing(version, indexes.COSINE_SPEC, tuned):
            _compare_with_ivfflat(version, indexes.COSINE_SPEC, tune_similar_search, tuned)
    lists.build_missing(version)
    return built


def tune_searches(version: ModelVersion) -> dict[str, Any]:
    """Tune both searches again (a rebuilt index answers differently); the version's settings."""
    tune_score_search(version)
    tune_similar_search(version)
    return version.vector_search


def _worth_comparing(version: ModelVersion, spec: indexes.IndexSpec, tuned: dict[str, Any]) -> bool:
    """With "auto", an HNSW search that is long or short of the target, measured on a sample;
    never under a version that is serving, since the comparison rebuilds the index."""
    return (
        getattr(rec_settings, spec.kind_setting or "", None) == "auto"
        and version.status != ModelStatus.ACTIVE
        and tuned.get("index") == "hnsw"
        and (tuned.get("users") or tuned.get("products") or 0) > 0
        and (tuned["ef_search"] >= LONG_EF_SEARCH or tuned["recall"] < tuned["target"])
    )


def _better(candidate: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether `candidate` serves better: it reaches the target and is faster, or the
    current one misses the target and the candidate finds more."""
    if candidate["recall"] >= candidate["target"]:
        return current["recall"] < current["target"] or candidate["ms"] < current["ms"]
    return current["recall"] < current["target"] and candidate["recall"] > current["recall"]


def _compare_with_ivfflat(
    version: ModelVersion,
    spec: indexes.IndexSpec,
    tune: Callable[[ModelVersion], dict[str, Any]],
    hnsw: dict[str, Any],
) -> None:
    """Rebuild the index of `spec` as IVFFlat (seconds even at 1M rows), `tune` it, and keep
    it when it serves better; otherwise build the graph again. Only one kind exists at a time:
    the planner, not the query, chooses between two indexes on one expression."""
    indexes.drop_indexes(version, [spec])
    indexes.build_indexes(version, [spec], kind="ivfflat")
    ivfflat = tune(version)
    if _better(ivfflat, hnsw):
        logger.info(
            "Model version %s keeps an IVFFlat %s index: it serves better than HNSW", version.pk, spec.short
        )
        return
    logger.info(
        "Model version %s keeps an HNSW %s index: IVFFlat did not serve better", version.pk, spec.short
    )
    indexes.drop_indexes(version, [spec])
    indexes.build_indexes(version, [spec], kind="hnsw")
    tune(version)


def tune_score_search(version: ModelVersion) -> dict[str, Any]:
    """Measure the score index on a sample of the version's users and keep the shortest search
    that reaches `SCORE_SEARCH_RECALL` (the longest tried, with a warning, when none does)."""
    kind = indexes.index_kind(indexes.SCORE_SPEC, version.pk)
    users = _sample_users(version)
    # What else the version records (the similar search's tuning, its lists) is kept.
    kept = {key: version.vector_search[key] for key in (SIMILAR, lists.LISTS) if key in version.vector_search}
    if kind is None or not len(users):
        version.vector_search = {"index": kind, "users": 0, **kept}
        version.save(update_fields=["vector_search"])
        return version.vector_search
    started = time.perf_counter()
    exact = _exact_top(version, users)
    name = LENGTHS[kind][0]

    def measure(length: int) -> tuple[float, float]:
        version.vector_search = {"index": kind, name: length, **kept}
        return measure_search(version, users, exact)

    sample = ("users", len(users))
    tuned = _tune(version, "the score index", kind, measure, sample, started, _missed_hint(kind))
    version.vector_search = {**tuned, **kept}
    version.save(update_fields=["vector_search"])
    return version.vector_search


def _tune(
    version: ModelVersion,
    what: str,
    kind: str,
    measure: Callable[[int], tuple[float, float]],
    sample: tuple[str, int],
    started: float,
    missed_hint: str = "",
) -> dict[str, Any]:
    """Find the shortest search of an index of `kind` that reaches `SCORE_SEARCH_RECALL`, log
    it (a warning, with `missed_hint`, when none does) and return what the version records."""
    target = rec_settings.SCORE_SEARCH_RECALL
    name = LENGTHS[kind][0]
    length, recall, milliseconds = _shortest(_lengths(version, kind), measure, target)
    reached = recall >= target
    noun, count = sample
    (logger.info if reached else logger.warning)(
        "Tuned %s of model version %s: %s %s %d finds %.3f of the exact top %d "
        "(target %.2f) in %.1f ms per query, on %d %s; tuning took %.1fs.%s",
        what,
        version.pk,
        kind,
        name,
        length,
        recall,
        K,
        target,
        milliseconds,
        count,
        noun,
        time.perf_counter() - started,
        "" if reached else missed_hint,
    )
    return {
        "index": kind,
        name: length,
        "recall": round(recall, 4),
        "target": target,
        "ms": round(milliseconds, 2),
        noun: count,
    }


def _lengths(version: ModelVersion, kind: str) -> Sequence[int]:
    """The search lengths to try on an index of this kind, shortest first (IVFFlat: up to all
    of its lists, an exact scan)."""
    lengths = LENGTHS[kind][1]
    if kind == "ivfflat":
        lists = indexes.ivfflat_lists(ProductVector.objects.filter(model_version=version).count())
        lengths = (*(n for n in lengths if n < lists), lists)
    return lengths


def _shortest(
    lengths: Sequence[int], measure: Callable[[int], tuple[float, float]], target: float
) -> tuple[int, float, float]:
    """The shortest length that reaches `target` recall (the longest tried when none does),
    with its recall and milliseconds per query. The ladder doubles: between the last length
    short of the target and the first that reaches it, look for a shorter one that also does
    (within an eighth)."""
    shorter = None  # the longest length tried that falls short
    for length in lengths:
        recall, milliseconds = measure(length)
        if recall >= target:
            break
        shorter = length
    while recall >= target and shorter is not None and length - shorter > max(1, shorter // 8):
        middle = (shorter + length) // 2
        found = measure(middle)
        if found[0] >= target:
            length, (recall, milliseconds) = middle, found
        else:
            shorter = middle
    return length, recall, milliseconds


def tune_similar_search(version: ModelVersion) -> dict[str, Any]:
    """Measure "similar products" (the cosine index) from a sample of the version's products
    and keep the shortest search (HNSW's `ef_search` or IVFFlat's `probes`) that finds
    `SCORE_SEARCH_RECALL` of their exact neighbours (`vector_search["similar"]`)."""
    seeds = _sample_products(version)
    cosine_index = indexes.index_name(indexes.COSINE_SPEC, version.pk)
    if not seeds or not indexes.existing_indexes(version.pk).get(cosine_index):
        return _save_similar(version, {"products": 0})
    started = time.perf_counter()
    exact = _exact_top(version, [vector for _, vector in seeds], cosine=True, skip=[pid for pid, _ in seeds])
    kind = indexes.index_kind(indexes.COSINE_SPEC, version.pk)
    name = LENGTHS[kind][0]

    def measure(length: int) -> tuple[float, float]:
        version.vector_search = {**version.vector_search, SIMILAR: {"index": kind, name: length}}
        return measure_similar(version, [pid for pid, _ in seeds], exact)

    tuned = _tune(version, "similar products", kind, measure, ("products", len(seeds)), started)
    return _save_similar(version, tuned)


def _save_similar(version: ModelVersion, tuned: dict[str, Any]) -> dict[str, Any]:
    version.vector_search = {**version.vector_search, SIMILAR: tuned}
    version.save(update_fields=["vector_search"])
    return tuned


def measure_similar(
    version: ModelVersion, product_ids: Sequence[str], exact: Sequence[set[str]], k: int = K
) -> tuple[float, float]:
    """recall@k of serving's "similar products" search from `product_ids` against their exact
    cosine neighbours, and its milliseconds per query."""
    started = time.perf_counter()
    found = [{p for p, _ in queries.similar_products(pid, k, version)} for pid in product_ids]
    milliseconds = (time.perf_counter() - started) * 1000 / max(len(product_ids), 1)
    return _recall(found, exact, k), milliseconds


def _recall(found: Sequence[set[str]], exact: Sequence[set[str]], k: int) -> float:
    return float(np.mean([len(f & e) / min(k, len(e) or 1) for f, e in zip(found, exact, strict=True)]))


def measure_search(
    version: ModelVersion, users: Sequence[np.ndarray], exact: Sequence[set[str]], k: int = K
) -> tuple[float, float]:
    """recall@k of serving's score search for `users` against their `exact` top k (product
    ids), and its milliseconds per query: as the version's `vector_search` (or the settings)
    make it search."""
    started = time.perf_counter()
    found = [{p for p, _ in queries.nearest_products(u, k, version=version)} for u in users]
    milliseconds = (time.perf_counter() - started) * 1000 / len(users)
    return _recall(found, exact, k), milliseconds


def _missed_hint(kind: str) -> str:
    if rec_settings.SCORE_INDEX == "auto":
        # "auto" compares the other kind next, or already has.
        return " Below the target even at the longest search of this kind."
    other = "ivfflat" if kind == "hnsw" else "hnsw"
    return (
        f" Below the target even at the longest search: try RECOMMENDATIONS['SCORE_INDEX'] = {other!r} "
        "(or 'auto') for the next version; docs/benchmarks.md compares the kinds on several kinds of data."
    )


def _sample(version: ModelVersion, model: type[Model], key: str, size: int) -> list[tuple[Any, np.ndarray]]:
    """`size` random (key, vector) rows of the version's users or products."""
    table = connection.ops.quote_name(model._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {connection.ops.quote_name(key)}, vector_send(embedding) FROM {table} "
            "WHERE model_version_id = %s ORDER BY random() LIMIT %s",
            [version.pk, size],
        )
        return [(pk, queries.parse_vector(sent)) for pk, sent in cursor.fetchall()]


def _sample_users(version: ModelVersion) -> list[np.ndarray]:
    return [vector for _, vector in _sample(version, UserVector, "user_id", SAMPLE_USERS)]


def _sample_products(version: ModelVersion) -> list[tuple[str, np.ndarray]]:
    return _sample(version, ProductVector, "product_id", SAMPLE_PRODUCTS)


def _exact_top(
    version: ModelVersion,
    vectors: list[np.ndarray],
    *,
    cosine: bool = False,
    skip: Sequence[str] | None = None,
) -> list[set[str]]:
    """Each vector's exact top K over all of the version's products, read in chunks so that
    the memory stays bounded at any catalogue size: by vector . item + bias (a user), or with
    `cosine` by the angle between the plain vectors (a product, leaving out `skip[i]`, the
    product the i-th vector belongs to)."""
    targets = queries.unit_rows(np.stack(vectors)) if cosine else np.stack(vectors)
    skipped = np.array(skip, dtype=object)[:, None] if skip is not None else None
    best_scores = np.empty((len(vectors), 0), dtype=np.float32)
    best_ids = np.empty((len(vectors), 0), dtype=object)
    # The rows arrive CHUNK at a time, not all at once.
    for keys, matrix, biases in queries.vector_chunks(version, ProductVector, "product_id", CHUNK):
        ids = np.array(keys, dtype=object)
        if cosine:
            scores = targets @ queries.unit_rows(matrix).T
            if skipped is not None:
                scores[ids[None, :] == skipped] = -np.inf
        else:
            scores = targets @ matrix.T + biases
        top = (
            np.argsort(-scores, axis=1)[:, :K]
            if len(ids) <= K
            else np.argpartition(-scores, K, axis=1)[:, :K]
        )
        scores = np.concatenate([best_scores, np.take_along_axis(scores, top, axis=1)], axis=1)
        candidates = np.concatenate([best_ids, ids[top]], axis=1)
        keep = np.argsort(-scores, axis=1)[:, :K]
        best_scores = np.take_along_axis(scores, keep, axis=1)
        best_ids = np.take_along_axis(candidates, keep, axis=1)
    return [set(row) for row in best_ids.tolist()]
