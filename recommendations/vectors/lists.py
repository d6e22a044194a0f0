"""Ranked lists computed once per model version, so that serving's two commonest vector
searches become one row read.

- "similar": each product's nearest products by cosine, scored as "similar products" scores
  them (`similar_score`: the angle blended with the titles' trigram similarity);
- "for_user": each user's best products by the two-tower score of their stored vector
  (user . item + bias): "recommended for you" until their latest events move their taste.

Both are exact where the scores fit `PRECOMPUTED_LIST_MAX_SCORES` (products x products,
users x products): every product is scored, block by block with torch (on the GPU when the
worker has one), so the lists hold what the vector indexes find approximately. Past it, the
"similar" lists are ranked the way an IVFFlat index searches (`clustered_blocks`): the
products are clustered by direction, and each cluster's products are ranked against those
of its nearest clusters only, with as many clusters probed as reach `SCORE_SEARCH_RECALL` of
the exact neighbours on a sample (measured, and recorded with the lists). Users' lists past
the budget are not built; their index serves. Lists are built with the version's indexes
(`tuning.prepare_search`), before it serves, and recorded in
`ModelVersion.vector_search["lists"]`.

Serving falls back to the index for anything without a list: a product embedded after the
lists were built (its own list is dropped when it is re-embedded), a visitor whose recent
events count in their taste, a request wanting more than `PRECOMPUTED_LIST_LENGTH`
candidates. A product created after the build does not appear in the other products' or the
users' lists until the next embed (the nightly retrain, or "embed only"); the rules still
drop what went out of stock or inactive on every request. A user's list comes with their
history read, so only where vectors are read from the default database (with
`VECTOR_READ_DATABASE`, "for you" searches the replica's index). Settings apply to versions
prepared from then on.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
from django.core.exceptions import ImproperlyConfigured
from django.db import connection, connections, transaction

from recommendations.adapters import get_product_adapter
from recommendations.conf import rec_settings
from recommendations.models import (
    ListKind,
    ModelVersion,
    PrecomputedList,
    ProductDocument,
    ProductVector,
    UserVector,
)
from recommendations.models.search import search_form
from recommendations.vectors import queries

logger = logging.getLogger(__name__)

# Share of the titles' trigram similarity in a similar product's score (the rest: cosine).
CONTENT_WEIGHT = 0.3
# Scores held at once while ranking: a block of rows against every product (bounds memory).
BLOCK_SCORES = 2**25
BLOCK_ROWS = 65_536
# Clusters probed when "similar" lists are ranked by cluster, tried in turn; the sample of
# products whose exact neighbours the fewest enough is chosen on.
PROBES_TRIED = (4, 8, 16, 32, 64, 128)
RECALL_SAMPLE = 1000
# Products whose titles are read through the adapter at once (those without a search document).
TITLE_BATCH = 10_000
# A word, as pg_trgm splits text: letters and digits in any script.
WORD = re.compile(r"[^\W_]+")
LISTS = "lists"


def similar_score(cosine: float, title_similarity: float) -> float:
    """How alike two products are: mostly their vectors' angle, partly their titles' words."""
    return (1 - CONTENT_WEIGHT) * cosine + CONTENT_WEIGHT * title_similarity


def list_length() -> int:
    """`PRECOMPUTED_LIST_LENGTH`, checked: products per list (0: no lists)."""
    length = rec_settings.PRECOMPUTED_LIST_LENGTH
    if isinstance(length, bool) or not isinstance(length, int) or length < 0:
        raise ImproperlyConfigured(
            f"RECOMMENDATIONS['PRECOMPUTED_LIST_LENGTH'] must be a whole number >= 0 (0 turns the "
            f"lists off); got {length!r}."
        )
    return length


def _max_scores() -> float:
    value = rec_settings.PRECOMPUTED_LIST_MAX_SCORES
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ImproperlyConfigured(
            f"RECOMMENDATIONS['PRECOMPUTED_LIST_MAX_SCORES'] must be a number >= 0; got {value!r}."
        )
    return value


def has_lists(version: ModelVersion, kind: str, length: int = 1) -> bool:
    """Whether `version` has lists of this kind, `length` products long at least (serving
    asks before reading one)."""
    built = version.vector_search.get(LISTS, {}).get(kind, {})
    return bool(built.get("rows")) and (built.get("complete") or built.get("length", 0) >= length)


def build_missing(version: ModelVersion) -> dict[str, Any]:
    """Build the version's lists unless it has a record of them (built or skipped)."""
    if LISTS in version.vector_search:
        return version.vector_search[LISTS]
    return build(version)


@dataclass(frozen=True)
class Vectors:
    """Every row of one vector table in a version: keys (as strings), vectors, biases."""

    keys: list[str]
    matrix: np.ndarray
    biases: np.ndarray

    def __len__(self) -> int:
        return len(self.keys)


# One list: the key it belongs to, then its products and their scores, best first.
Row = tuple[str, list[str], list[float]]


def build(version: ModelVersion) -> dict[str, Any]:
    """Compute and write both kinds of lists of `version`, replacing any it had; returns and
    records what was built (rows, length, seconds) or why a kind was not."""
    length = list_length()
    products = _read(version, ProductVector, "product_id")
    users = _read(version, UserVector, "user_id")
    record: dict[str, Any] = {}
    units = queries.unit_rows(products.matrix).astype(np.float32)
    clustered = _clustered_plan(units) if len(products) ** 2 > _max_scores() and length else None
    neighbours = (
        ranked_blocks(units, units, length, skip_self=True)
        if clustered is None
        else clustered_blocks(
            units, length, clustered.centroids, clustered.probes, assigned=clustered.assigned
        )
    )
    plans = [
        # The titles are read before the rows are: the COPY holds the connection meanwhile.
        (
            ListKind.SIMILAR,
            products,
            lambda: _similar_rows(products, neighbours, _title_trigrams(products.keys)),
        ),
        (ListKind.FOR_USER, users, lambda: _user_rows(products, users, length)),
    ]
    for kind, owners, rows in plans:
        scores = len(owners) * len(products)
        if kind == ListKind.SIMILAR and clustered is not None:
            scores = clustered.scores
        if length == 0 or not len(owners) or not len(products):
            record[kind] = {"rows": 0, "reason": "off" if length == 0 else "no vectors"}
        elif scores > _max_scores():
            record[kind] = {"rows": 0, "reason": f"{scores:.3g} scores > PRECOMPUTED_LIST_MAX_SCORES"}
            logger.info(
                "No %s lists for model version %s: %.3g scores is more than PRECOMPUTED_LIST_MAX_SCORES "
                "(%.3g); its index serves them",
                kind,
                version.pk,
                scores,
                _max_scores(),
            )
        else:
            started = time.perf_counter()
            written = _write(version, kind, rows())
            seconds = time.perf_counter() - started
            if kind == ListKind.SIMILAR and clustered is not None:
                seconds += clustered.seconds
            seconds = round(seconds, 1)
            # A list of every other product answers any length (a small catalogue).
            longest = len(products) - (1 if kind == ListKind.SIMILAR else 0)
            size = min(length, longest)
            record[kind] = {"rows": written, "length": size, "complete": size == longest, "seconds": seconds}
            if kind == ListKind.SIMILAR and clustered is not None:
                record[kind] |= clustered.record()
            logger.info(
                "Ranked %d %s lists of %d products for model version %s in %.1fs",
                written,
                kind,
                size,
                version.pk,
                seconds,
            )
        if record[kind]["rows"] == 0:
            PrecomputedList.objects.filter(model_version=version, kind=kind).delete()
    if any(built["rows"] for built in record.values()):
        # Fresh statistics, or the planner may not look a list up by its key in the visitor's read.
        with connection.cursor() as cursor:
            cursor.execute(f"ANALYZE {connection.ops.quote_name(PrecomputedList._meta.db_table)}")
    version.vector_search = {**version.vector_search, LISTS: record}
    version.save(update_fields=["vector_search"])
    return record


def _read(version: ModelVersion, model: type[ProductVector] | type[UserVector], key: str) -> Vectors:
    """Every row of the version in `model`'s table."""
    chunks = list(queries.vector_chunks(version, model, key))
    if not chunks:
        return Vectors([], np.zeros((0, version.dimensions), np.float32), np.zeros(0, np.float32))
    return Vectors(
        [str(k) for keys, _, _ in chunks for k in keys],
        np.concatenate([matrix for _, matrix, _ in chunks]),
        np.concatenate([biases for _, _, biases in chunks]),
    )


def ranked_blocks(
    targets: np.ndarray, items: np.ndarray, k: int, *, bias: np.ndarray | None = None, skip_self: bool = False
) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
    """Each target row's k best items by `target . item (+ bias)`, best first, a block of
    rows at a time (memory stays bounded): (the block's rows, item indices, scores).
    `skip_self`: target i is item i, which is left out of its own list."""
    # Here, not at the top: serving reads lists through this module and never loads torch.
    import torch

    from recommendations.devices import configured_device
    from recommendations.learning.two_tower import resolve_device

    device = resolve_device(configured_device())
    item_matrix = torch.from_numpy(items).to(device)
    item_bias = torch.from_numpy(bias).to(device) if bias is not None else None
    k = min(k, len(items) - (1 if skip_self else 0))
    size = max(1, BLOCK_SCORES // max(len(items), 1))
    with torch.inference_mode():
        for start in range(0, len(targets), size):
            block = slice(start, min(start + size, len(targets)))
            rows = torch.from_numpy(targets[block]).to(device)
            found = rows @ item_matrix.T
            if item_bias is not None:
                found += item_bias
            if skip_self:
                own = torch.arange(block.start, block.stop, device=device)
                found[torch.arange(len(rows), device=device), own] = -torch.inf
            best, where = torch.topk(found, k, dim=1)
            yield block, where.cpu().numpy(), best.cpu().numpy()


# Ranked neighbours, a block of rows at a time: (the rows, their neighbours' indices, scores).
Ranked = Iterator[tuple[Any, np.ndarray, np.ndarray]]


def _similar_rows(products: Vectors, neighbours: Ranked, grams: dict[str, frozenset[str]]) -> Iterator[Row]:
    """Each product's nearest by cosine (`neighbours`: rows, their neighbours, cosines), ranked
    by `similar_score` with the similarity of their titles (`grams`: each product's trigrams)."""
    names = np.array(products.keys, dtype=object)
    for rows, indices, cosines in neighbours:
        keys, neighbours_of = names[rows].tolist(), names[indices]
        titles = _title_similarities(keys, neighbours_of, grams)
        blended = similar_score(cosines.astype(np.float64), titles)
        # Ranked by the blended score, as the rules rank the live search's neighbours.
        order = np.argsort(-blended, axis=1, kind="stable")
        ranked = np.take_along_axis(neighbours_of, order, axis=1).tolist()
        yield from zip(keys, ranked, np.take_along_axis(blended, order, axis=1).tolist(), strict=True)


@dataclass(frozen=True)
class ClusteredPlan:
    """How `clustered_blocks` ranks a catalogue too large to score exactly."""

    centroids: np.ndarray
    assigned: np.ndarray  # each product's cluster
    probes: int
    recall: float
    scores: float
    seconds: float  # to cluster the products and choose the probes

    def record(self) -> dict[str, Any]:
        return {"exact": False, "clusters": len(self.centroids), "probes": self.probes, "recall": self.recall}


def _clustered_plan(units: np.ndarray) -> ClusteredPlan:
    """Clusters for `units` (the square root of their number, as IVFFlat's lists) and the
    fewest probed clusters that find `SCORE_SEARCH_RECALL` of a sample's exact 10 nearest
    (the most tried when none does)."""
    started = time.perf_counter()
    clusters = max(1, round(len(units) ** 0.5))
    centroids = spherical_kmeans(units, clusters)
    assigned = assign_clusters(units, centroids)
    rng = np.random.default_rng(0)
    sample = np.sort(rng.choice(len(units), size=min(RECALL_SAMPLE, len(units)), replace=False))
    k = min(10, len(units) - 1)
    ranked = [row for _, found, _ in ranked_blocks(units[sample], units, k + 1) for row in found.tolist()]
    exact = [set([i for i in row if i != own][:k]) for row, own in zip(ranked, sample.tolist(), strict=True)]
    target, recall, probes = rec_settings.SCORE_SEARCH_RECALL, 0.0, 1
    for probes in PROBES_TRIED:
        probes = min(probes, clusters)
        hits = 0
        for rows, found, _ in clustered_blocks(units, k, centroids, probes, assigned=assigned, only=sample):
            for own, row in zip(rows.tolist(), found.tolist(), strict=True):
                hits += len(exact[int(np.searchsorted(sample, own))] & set(row))
        recall = hits / max(sum(len(e) for e in exact), 1)
        if recall >= target or probes == clusters:
            break
    if recall < target:
        logger.warning(
            "Clustered similar lists find %.3f of the exact neighbours with %d of %d clusters probed "
            "(SCORE_SEARCH_RECALL is %.2f)",
            recall,
            probes,
            clusters,
            target,
        )
    scores = float(len(units)) * len(units) * probes / clusters
    return ClusteredPlan(centroids, assigned, probes, round(recall, 4), scores, time.perf_counter() - started)


def spherical_kmeans(units: np.ndarray, clusters: int, iterations: int = 12, seed: int = 0) -> np.ndarray:
    """`clusters` unit centroids of the directions in `units` (k-means on cosine), trained on
    a sample of 64 rows per cluster."""
    import torch

    rng = np.random.default_rng(seed)
    sample = units[rng.choice(len(units), size=min(len(units), 64 * clusters), replace=False)]
    data = torch.from_numpy(np.ascontiguousarray(sample))
    centroids = data[torch.from_numpy(rng.choice(len(sample), size=clusters, replace=False))].clone()
    with torch.inference_mode():
        for _ in range(iterations):
            assigned = _nearest_centroids(data, centroids)
            sums = torch.zeros_like(centroids).index_add_(0, assigned, data)
            empty = torch.bincount(assigned, minlength=clusters) == 0
            # An empty cluster starts again from a random row.
            sums[empty] = data[torch.from_numpy(rng.choice(len(data), size=int(empty.sum()), replace=True))]
            centroids = sums / sums.norm(dim=1, keepdim=True).clamp_min(1e-9)
    return centroids.numpy()


def _nearest_centroids(data: Any, centroids: Any) -> Any:
    """Each row's cluster (torch tensors in, a tensor out), a block of rows at a time."""
    import torch

    return torch.cat([(part @ centroids.T).argmax(dim=1) for part in data.split(BLOCK_ROWS)])


def assign_clusters(units: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Each row's cluster: the centroid nearest its direction."""
    import torch

    with torch.inference_mode():
        return _nearest_centroids(torch.from_numpy(units), torch.from_numpy(centroids)).numpy()


def clustered_blocks(
    units: np.ndarray,
    k: int,
    centroids: np.ndarray,
    probes: int,
    *,
    assigned: np.ndarray | None = None,
    only: np.ndarray | None = None,
) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Each row's k nearest other rows by cosine, among the rows of the `probes` clusters
    nearest its own (more when those hold fewer than k others): IVFFlat's search, done for a
    cluster's rows at once. Yields (rows, their neighbours' indices, cosines), best first;
    `assigned`: each row's cluster when already known (`assign_clusters`); `only`: just these
    rows (sorted indices)."""
    import torch

    from recommendations.devices import configured_device
    from recommendations.learning.two_tower import resolve_device

    device = resolve_device(configured_device())
    data = torch.from_numpy(units).to(device)
    middles = torch.from_numpy(centroids).to(device)
    with torch.inference_mode():
        clusters = (
            _nearest_centroids(data, middles) if assigned is None else torch.from_numpy(assigned).to(device)
        )
        order = torch.argsort(clusters, stable=True)
        counts = torch.bincount(clusters, minlength=len(middles)).tolist()
        starts = np.concatenate([[0], np.cumsum(counts)]).tolist()
        nearest = torch.argsort(middles @ middles.T, dim=1, descending=True).cpu().numpy()
        wanted = torch.from_numpy(only).to(device) if only is not None else None
        for cluster in range(len(middles)):
            members = order[starts[cluster] : starts[cluster + 1]]
            if wanted is not None:
                members = members[torch.isin(members, wanted)]
            if not len(members):
                continue
            probed, held = [], 0
            for other in nearest[cluster]:
                if len(probed) >= probes and held > k:
                    break
                probed.append(order[starts[other] : starts[other + 1]])
                held += counts[other]
            candidates = torch.cat(probed)
            size = min(k, len(candidates) - 1)
            for part in members.split(max(1, BLOCK_SCORES // len(candidates))):
                found = data[part] @ data[candidates].T
                found[part[:, None] == candidates[None, :]] = -torch.inf
                best, where = torch.topk(found, size, dim=1)
                yield part.cpu().numpy(), candidates[where].cpu().numpy(), best.cpu().numpy()


def trigrams(text: str) -> frozenset[str]:
    """pg_trgm's trigrams of a text: lower-cased words (runs of letters and digits), each
    padded with two spaces before and one after. Its `similarity()` costs about 6 us a pair,
    mostly rebuilding these; a list build compares millions of pairs, so it builds each
    title's once here (the tests check the scores against PostgreSQL's)."""
    out: set[str] = set()
    for word in WORD.findall(text.lower()):
        padded = f"  {word} "
        out.update(padded[i : i + 3] for i in range(len(padded) - 2))
    return frozenset(out)


def _title_trigrams(keys: Sequence[str]) -> dict[str, frozenset[str]]:
    """The title trigrams of these products, from their search documents.

    A product without one (the catalogue was loaded after the index was last refreshed)
    has its title read through the adapter instead (in the form documents store it): a list
    built without titles would rank differently from the live query, which blends them.
    """
    documents = ProductDocument.objects.values_list("product_id", "title")
    grams = {pid: trigrams(title) for pid, title in documents.iterator(chunk_size=50_000)}
    missing = [key for key in keys if key not in grams]
    if missing:
        started = time.perf_counter()
        adapter = get_product_adapter()
        for start in range(0, len(missing), TITLE_BATCH):
            chunk = adapter.by_keys(missing[start : start + TITLE_BATCH])
            records = adapter.records(chunk)
            grams.update((record.id, trigrams(search_form(record.title))) for record in records)
        logger.warning(
            "%d of %d products have no search document; read their titles from the catalogue in %.1fs. "
            "Run `manage.py refresh_serving` after loading a catalogue so search finds them too.",
            len(missing),
            len(keys),
            time.perf_counter() - started,
        )
    return grams


def _title_similarities(
    keys: Sequence[str], neighbours: np.ndarray, grams: dict[str, frozenset[str]]
) -> np.ndarray:
    """pg_trgm's similarity of each product's title to each of its neighbours' (shared
    trigrams over all distinct ones; 0 where either has no search document or no words)."""
    out = np.zeros(neighbours.shape, dtype=np.float64)
    for i, (key, row) in enumerate(zip(keys, neighbours.tolist(), strict=True)):
        seed = grams.get(key)
        if not seed:
            continue
        for j, other_key in enumerate(row):
            other = grams.get(other_key)
            if other:
                shared = len(seed & other)
                out[i, j] = shared / (len(seed) + len(other) - shared)
    return out


def _user_rows(products: Vectors, users: Vectors, length: int) -> Iterator[Row]:
    """Each user's `length` best products by user . item + bias."""
    names = np.array(products.keys, dtype=object)
    for block, indices, scores in ranked_blocks(users.matrix, products.matrix, length, bias=products.biases):
        yield from zip(
            users.keys[block], names[indices].tolist(), scores.astype(np.float64).tolist(), strict=True
        )


def _write(version: ModelVersion, kind: str, rows: Iterator[Row]) -> int:
    """Replace the version's lists of this kind in one transaction (COPY, as they are ranked)."""
    table = connection.ops.quote_name(PrecomputedList._meta.db_table)
    written = 0
    with transaction.atomic():
        PrecomputedList.objects.filter(model_version=version, kind=kind).delete()
        with connection.cursor() as cursor:
            columns = "model_version_id, kind, key, product_ids, scores"
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for key, ids, scores in rows:
                    copy.write_row((version.pk, kind, key, ids, scores))
                    written += 1
    return written


def forget(version: ModelVersion) -> None:
    """Delete the version's lists and their record: its vectors were written again (the next
    `build_missing` ranks them anew) or it is retired."""
    PrecomputedList.objects.filter(model_version_id=version.pk).delete()
    if version.vector_search.pop(LISTS, None) is not None:
        version.save(update_fields=["vector_search"])


def drop(version: ModelVersion, kind: str, keys: Sequence[str]) -> int:
    """Forget the lists of these keys (a re-embedded product's neighbours changed)."""
    if not keys or not has_lists(version, kind):
        return 0
    deleted, _ = PrecomputedList.objects.filter(model_version=version, kind=kind, key__in=list(keys)).delete()
    return deleted


def similar(product_id: str, k: int, version: ModelVersion) -> list[tuple[str, float]] | None:
    """The product's k most similar products with their scores, from its list; None when it
    has no list long enough (serving then searches the index)."""
    if not has_lists(version, ListKind.SIMILAR, k):
        return None
    with connections[queries.vector_read_database()].cursor() as cursor:
        cursor.execute(_read_sql(), [version.pk, ListKind.SIMILAR.value, product_id])
        row = cursor.fetchone()
    if row is None:
        return None
    return list(zip(row[0][:k], row[1][:k], strict=True))


@cache
def _read_sql() -> str:
    table = connection.ops.quote_name(PrecomputedList._meta.db_table)
    return f"SELECT product_ids, scores FROM {table} WHERE model_version_id = %s AND kind = %s AND key = %s"
