"""Personalised product search.

Three signals, blended:
- keyword relevance: PostgreSQL full-text search (weighted title > brand > text) plus
  trigram word similarity on titles, which forgives typos ("shampo", "sampoo");
- semantic similarity: the mean vector of the best keyword hits (pseudo-relevance feedback
  in the item tower's space) finds products that match the meaning but not the words, and
  scores every candidate by closeness to that meaning;
- the visitor's real-time taste vector, so two shoppers typing "shoes" see different orders.
Without an active model the answer is keyword relevance alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.postgres.search import SearchQuery, SearchRank, TrigramWordSimilarity
from django.db import connection, transaction
from django.db.models import F, QuerySet

from recommendations.models import ModelVersion, ProductDocument
from recommendations.models.search import TEXT_SEARCH_CONFIG
from recommendations.serving import variants
from recommendations.serving.cache import ProcessCache
from recommendations.serving.errors import InvalidParameters
from recommendations.serving.realtime import current_taste
from recommendations.serving.rules import finalize, limit_for, pool_size
from recommendations.serving.types import Audience, Candidate, Kind, Options, RecommendationResult
from recommendations.vectors import queries

MAX_QUERY_LENGTH = 200
KEYWORD_POOL = 200
# Keyword hits whose vectors define the query's meaning.
FEEDBACK_HITS = 10
WEIGHTS = {"keyword": 0.6, "semantic": 0.25, "taste": 0.15}
# Several "-" (web search's NOT) in a row, spaces between them or not: PostgreSQL nests one NOT
# in another for each, and about thirty overflow its parser ("tsquery stack too small").
REPEATED_NOT = re.compile(r"-[\s-]*-")
# A word or quoted phrase the query excludes (web search's "-word", '-"two words"').
NEGATED = re.compile(r'(?:^|\s)-+("[^"]*"|[^\s"]+)')
# A near match's share of its similarity when the query has exact hits too: below the
# semantic neighbours (whose weight is WEIGHTS["semantic"]), above nothing.
NEAR_SHARE_BESIDE_EXACT = 0.1
# The word similarity a title needs when nothing matches the query's words (pg_trgm's
# default, 0.6, misses common typos: "cutcle" is 0.5 like "Cuticle oil").
TYPO_WORD_SIMILARITY = 0.45
# How each candidate relates to the words of the query.
EXACT, NEAR, RELATED = 2, 1, 0


def clean_query(query: str | None) -> str:
    """The query trimmed; `InvalidParameters` when it is empty or too long."""
    query = " ".join((query or "").split())
    if not query:
        raise InvalidParameters({"q": "Give a search query, e.g. ?q=running shoes."})
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidParameters({"q": f"The query is {len(query)} characters; at most {MAX_QUERY_LENGTH}."})
    return query


def _search_query(query: str) -> SearchQuery:
    words = REPEATED_NOT.sub("-", query)  # "t--shirt" is a t-shirt, "--x" one NOT
    return SearchQuery(words, search_type="websearch", config=TEXT_SEARCH_CONFIG)


def keyword_hits(query: str, k: int = KEYWORD_POOL) -> tuple[dict[str, float], dict[str, float]]:
    """Products matching the words, and products nearly matching them: (id -> relevance in
    0..1) each, exact hits scoring above near ones.

    Full-text search first (GIN index, stemmed words). Only when it finds fewer than k products
    does trigram word similarity on titles (GIN index) add near matches: typos cost the
    second query, correctly spelled queries do not. A near match is what a typo needs when
    nothing matches; beside exact hits it is a longer word sharing letters ("tea" and
    "teaser"), so it then scores below what the query's meaning finds too.
    """
    search_query = _search_query(query)
    # ts_rank with normalization 32 lies in [0, 1).
    exact = {
        pid: 0.5 + float(rank) / 2
        for pid, rank in ProductDocument.objects.filter(search_vector=search_query)
        .annotate(rank=SearchRank(F("search_vector"), search_query, normalization=32))
        .order_by("-rank", "product_id")
        .values_list("product_id", "rank")[:k]
    }
    near: dict[str, float] = {}
    if len(exact) < k:
        similar_titles = (
            ProductDocument.objects.filter(title__trigram_word_similar=query)
            .exclude(product_id__in=list(exact))
            .annotate(similarity=TrigramWordSimilarity(query, "title"))
            .order_by("-similarity", "product_id")
            .values_list("product_id", "similarity")[: k - len(exact)]
        )
        # Nothing matched: a typo ("cutcle", "polsh") is all there is to go on, so take
        # spellings further off than pg_trgm's default cut-off (0.6) lets through.
        rows = list(similar_titles) if exact else _with_word_similarity(TYPO_WORD_SIMILARITY, similar_titles)
        share = NEAR_SHARE_BESIDE_EXACT if exact else 0.5
        near = {pid: float(similarity) * share for pid, similarity in rows}
        # Trigrams know no NOT: "shampoo -dry" is near "Dry shampoo spray".
        for pid in negated_hits(query, list(near)):
            del near[pid]
    return exact, near


def _with_word_similarity(threshold: float, rows: QuerySet) -> list[Any]:
    """`rows`, read with pg_trgm's word-similarity cut-off (what `%>` and the title index
    test) at `threshold` for this read alone."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('pg_trgm.word_similarity_threshold', %s, true)", [str(threshold)])
        found = list(rows)
        # LOCAL lasts to the end of the outermost transaction, which may be the request's.
        cursor.execute("SET LOCAL pg_trgm.word_similarity_threshold TO DEFAULT")
    return found


def negated_hits(query: str, product_ids: list[str]) -> set[str]:
    """Those of `product_ids` that match a word the query excludes ("-bassline")."""
    excluded = [term.lstrip("-") for term in NEGATED.findall(query)]
    excluded = [term for term in excluded if term.strip('"')]
    if not excluded or not product_ids:
        return set()
    any_excluded = _search_query(" or ".join(excluded))
    matching = ProductDocument.objects.filter(product_id__in=product_ids, search_vector=any_excluded)
    return set(matching.values_list("product_id", flat=True))


@dataclass(frozen=True)
class QueryMatches:
    """What a query finds, the same for every visitor, so it is kept per query and version.

    `ids`: the candidates, keyword hits first (best first), then the products near the query's
    meaning; `scores`: each one's score before the visitor's taste; `matched`: EXACT for a
    keyword hit, NEAR for a near match of the words, RELATED for a product of like meaning.
    `units`: the directions of the candidates with a vector (the visitor's taste
    scores them; diversity compares them); `rows`: where each of those sits in `ids`, and
    `row_of`: each candidate's row in `units` (-1: none). Arrays, not dicts: a request
    re-scores the candidates with two vector operations.
    """

    ids: list[str]
    scores: np.ndarray
    matched: np.ndarray
    rows: np.ndarray
    row_of: np.ndarray
    units: np.ndarray | None = None


def query_matches(query: str, version: ModelVersion | None, k: int) -> QueryMatches:
    """Keyword hits and, with a model, the `k` products nearest the meaning of the best ones."""
    exact, near = keyword_hits(query)
    keyword = {**exact, **near}
    hits = sorted(keyword.items(), key=lambda item: -item[1])
    if version is None:
        return _matches(keyword, exact, {}, [], None)
    seeds = [pid for pid, _ in hits[: max(k, FEEDBACK_HITS)]]
    embeddings = {pid: v.embedding for pid, v in queries.product_vectors(seeds, version).items()}
    feedback = [(embeddings[pid], score) for pid, score in hits[:FEEDBACK_HITS] if pid in embeddings]
    meaning = None
    if feedback:
        meaning = queries.unit_rows(
            sum(score * queries.unit_rows(embedding) for embedding, score in feedback)
        )
        nearest = queries.nearest_products(meaning, k, version, from_items=True)
        related = [pid for pid, _ in nearest if pid not in embeddings]
        # The meaning of "headphones -bassline" is near Bassline's headphones too.
        unwanted = negated_hits(query, related)
        related = [pid for pid in related if pid not in unwanted]
        embeddings.update({pid: v.embedding for pid, v in queries.product_vectors(related, version).items()})
    if not embeddings:
        return _matches(keyword, exact, {}, [], None, weighted=True)
    ids = list(embeddings)
    # Every candidate's direction at once: one matrix product per signal, not a norm each.
    units = queries.unit_rows(np.stack([embeddings[pid] for pid in ids]))
    semantic = dict(zip(ids, (units @ meaning).tolist(), strict=True)) if meaning is not None else {}
    return _matches(keyword, exact, semantic, ids, units, weighted=True)


def _matches(
    keyword: dict[str, float],
    exact: dict[str, float],
    semantic: dict[str, float],
    vector_ids: list[str],
    units: np.ndarray | None,
    *,
    weighted: bool = False,
) -> QueryMatches:
    """The candidates in order with their scores before taste (`weighted`: blended as with a
    model; else keyword relevance alone)."""
    ids = list(dict.fromkeys([*keyword, *semantic]))
    scores = [
        WEIGHTS["keyword"] * keyword.get(pid, 0.0) + WEIGHTS["semantic"] * semantic.get(pid, 0.0)
        if weighted
        else keyword[pid]
        for pid in ids
    ]
    position = {pid: i for i, pid in enumerate(ids)}
    rows = np.array([position[pid] for pid in vector_ids], dtype=np.intp)
    row_of = np.full(len(ids), -1, dtype=np.intp)
    row_of[rows] = np.arange(len(rows))
    matched = np.array(
        [EXACT if pid in exact else NEAR if pid in keyword else RELATED for pid in ids], dtype=np.int8
    )
    return QueryMatches(ids, np.array(scores, dtype=np.float64), matched, rows, row_of, units)


# Queries' matches kept in each process, and shared with the others through Django's cache:
# about 70 KB each with 64-d vectors. The prefix names the layout of `QueryMatches`.
kept_matches = ProcessCache(size=256, lifetime="SEARCH_CACHE_SECONDS", shared_as="recommendations:search:2:")


def search(query: str, audience: Audience, options: Options) -> RecommendationResult:
    """Products for `query`, best first, personalised for the visitor when a model is active.

    What the query finds is shared by every visitor (`query_matches`, kept in the process and
    shared between processes through Django's cache);
    the visitor's taste only re-scores it, so a popular query costs only the visitor's own
    reads (history and stored vector) and the rules.
    """
    query = clean_query(query)
    version = variants.model_version(audience)
    k = limit_for(Kind.SEARCH, options, audience) * 3 + len(options.exclude) + len(audience.shown)
    matches = kept_matches.get(
        (query.lower(), version and version.pk, k), lambda: query_matches(query, version, k)
    )
    scores, personal = matches.scores, False
    if matches.units is not None:
        taste = current_taste(version, audience)
        if taste.vector is not None:
            affinity = matches.units @ queries.unit_rows(taste.vector)
            scores = scores.copy()
            scores[matches.rows] += WEIGHTS["taste"] * affinity.astype(np.float64)
            personal = True
    # The rules need room for exclusions and diversity, not the whole keyword pool.
    best = np.argsort(-scores, kind="stable")[: pool_size(Kind.SEARCH, options, audience)]
    units = matches.units
    reasons = {EXACT: f"Matches “{query}”", NEAR: f"Close to “{query}”", RELATED: f"Related to “{query}”"}
    candidates = []
    for at, score, matched, row in zip(
        best.tolist(),
        scores[best].tolist(),
        matches.matched[best].tolist(),
        matches.row_of[best].tolist(),
        strict=True,
    ):
        if version is None:
            source = "keyword"
        else:
            source = "search" if personal else "keyword" if matched != RELATED else "semantic"
        embedding = units[row] if row >= 0 and units is not None else None
        candidates.append(Candidate(matches.ids[at], score, source, reasons[matched], embedding=embedding))
    return finalize(
        Kind.SEARCH,
        candidates,
        audience,
        options,
        model_version_id=version and version.pk,
        context={"query": query},
    )
