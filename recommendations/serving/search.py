"""Personalised product search.

Three signals, blended:
- keyword relevance: PostgreSQL full-text search (weighted title > brand, category path and
  store name > description, accents folded) plus trigram word similarity on titles, which
  forgives typos ("shampo", "sampoo");
- semantic similarity: the mean vector of the best keyword hits (pseudo-relevance feedback
  in the item tower's space) finds products that match the meaning but not the words, and
  scores every candidate by closeness to that meaning;
- the visitor's real-time taste vector, so two shoppers typing "shoes" see different orders.
Without an active model the answer is keyword relevance alone.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.contrib.postgres.search import (
    SearchQuery,
    SearchRank,
    TrigramStrictWordSimilarity,
    TrigramWordSimilarity,
)
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from recommendations.adapters import get_product_adapter
from recommendations.models import ModelVersion, ProductDocument
from recommendations.models.search import TEXT_SEARCH_CONFIG, search_form
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
# What a near match scores (exact hits score 0.5 to 1): a typo, when nothing that can be shown
# matches the query's words, half its word similarity; beside exact hits, a title that holds
# every word of the query, one at least spelt another way ("moisturizer" and "Moisturiser":
# word trigram similarity at least RESPELLING), from RESPELLING_SCORE up to the weakest exact
# hit, above what the meaning alone finds (0.6 x 0.45 > WEIGHTS["semantic"]); any other, such
# as a longer word that starts with a word of the query ("tea" and "teaser") or a title with
# only some of its words ("green tea" and "Green Thumb"), a tenth of its similarity.
NEAR_SHARE = 0.5
NEAR_SHARE_BESIDE_EXACT = 0.1
RESPELLING = 0.5
RESPELLING_SCORE = 0.45
# The word similarity a title needs when nothing matches the query's words (pg_trgm's
# default, 0.6, misses common typos: "cutcle" is 0.5 like "Cuticle oil"), for a query with a
# word of TYPO_MIN_LETTERS or more (a short word shares half its trigrams with any word of
# the same first two letters: "rug" and "Running"), and then with a strict word similarity
# (whole words) of TYPO_STRICT_SIMILARITY: "polsh" and "polish" 0.44, "headp" and
# "Headphones" 0.42, but "dress" and "Press" 0.33, "table" and "Adjustable" 0.31.
TYPO_WORD_SIMILARITY = 0.45
TYPO_MIN_LETTERS = 5
TYPO_STRICT_SIMILARITY = 0.4
# Runs of Chinese, Japanese or Korean characters: the full-text parser reads a run as one
# word, so a query's run is also looked for inside titles.
CJK_RUN = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
# How each candidate relates to the words of the query.
EXACT, NEAR, RELATED = 2, 1, 0


def clean_query(query: str | None) -> str:
    """The query trimmed, in the form documents store (`search_form`: "ｺｰﾋｰ" finds
    "コーヒー"); `InvalidParameters` when it is empty or too long."""
    query = " ".join(search_form(query or "").split())
    if not query:
        raise InvalidParameters({"q": "Give a search query, e.g. ?q=running shoes."})
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidParameters({"q": f"The query is {len(query)} characters; at most {MAX_QUERY_LENGTH}."})
    return query


def _search_words(query: str) -> str:
    return REPEATED_NOT.sub("-", query)  # "t--shirt" is a t-shirt, "--x" one NOT


def _search_query(query: str) -> SearchQuery:
    return SearchQuery(_search_words(query), search_type="websearch", config=TEXT_SEARCH_CONFIG)


def _only_stop_words(query: str) -> bool:
    """Whether full-text search reads no word in the query ("the", "a and"): nothing can
    match it, and a near spelling of "the" is any title with "Theory" in it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT numnode(websearch_to_tsquery(%s::regconfig, %s)) = 0",
            [TEXT_SEARCH_CONFIG, _search_words(query)],
        )
        return cursor.fetchone()[0]


def keyword_hits(query: str, k: int = KEYWORD_POOL) -> tuple[dict[str, float], dict[str, float]]:
    """Products matching the words, and products nearly matching them: (id -> relevance in
    0..1) each, exact hits scoring above near ones.

    Full-text search first (GIN index, stemmed words; title, then brand, category path and
    store name, then description), plus titles holding a query's Chinese, Japanese or Korean
    text. Only when that finds fewer than k products does trigram word similarity on titles
    (GIN index) add near matches: typos cost the second query, correctly spelled queries do
    not. A near match is what a typo needs when nothing that can be shown matches; beside
    exact hits it is a respelling of a word, or a title that shares only letters or some
    words with the query, which then scores below what the query's meaning finds too.
    """
    search_query = _search_query(query)
    # A NOT gives every hit the same tiny rank (1e-20): rank by what the query asks for.
    wanted = NEGATED.sub(" ", query).strip()
    rank_query = _search_query(wanted) if wanted and wanted != query else search_query
    ranked = list(
        ProductDocument.objects.filter(search_vector=search_query)
        .annotate(rank=SearchRank(F("search_vector"), rank_query, normalization=32))
        .order_by("-rank", "product_id")
        .values_list("product_id", "rank")[:k]
    )
    # Relative to the best hit, so a title match stays well ahead of a word in a description
    # (ts_rank with normalization 32 squeezes both into [0, 1)).
    best = max((float(rank) for _, rank in ranked), default=0.0) or 1.0
    exact = {pid: 0.5 + float(rank) / best / 2 for pid, rank in ranked}
    if CJK_RUN.search(wanted) and len(exact) < k:
        exact.update(dict.fromkeys(_titles_holding(query, wanted, exact, k - len(exact)), 1.0))
    near: dict[str, float] = {}
    if len(exact) < k and (exact or not _only_stop_words(query)):
        near = _near_matches(query, wanted, exact, k - len(exact))
    return exact, near


def _titles_holding(query: str, wanted: str, exact: dict[str, float], k: int) -> list[str]:
    """Up to k titles (not among `exact`) holding the query's Chinese, Japanese or Korean text,
    and matching its other words, without what it excludes: the full-text parser reads
    "静音降噪蓝牙耳机" as one word, so "耳机" is looked for inside it."""
    titles = ProductDocument.objects.filter(*(Q(title__contains=run) for run in CJK_RUN.findall(wanted)))
    other_words = CJK_RUN.sub(" ", wanted).strip()
    if other_words:
        titles = titles.filter(search_vector=_search_query(other_words))
    found = list(
        titles.exclude(product_id__in=list(exact))
        .order_by("product_id")
        .values_list("product_id", flat=True)[:k]
    )
    unwanted = negated_hits(query, found)
    return [pid for pid in found if pid not in unwanted]


def _near_matches(query: str, wanted: str, exact: dict[str, float], k: int) -> dict[str, float]:
    """Up to k titles near the query's words (not among `exact`), scored as the constants above say."""
    similar_titles = (
        ProductDocument.objects.filter(title__trigram_word_similar=query)
        .exclude(product_id__in=list(exact))
        .annotate(
            similarity=TrigramWordSimilarity(query, "title"),
            strict=TrigramStrictWordSimilarity(query, "title"),
        )
        .order_by("-similarity", "product_id")
        .values_list("product_id", "similarity", "strict", "title")[:k]
    )
    # Sold-out exact hits still lend the query their meaning, but cannot answer it.
    answered = _any_available(exact)
    if answered or max(map(len, query.split())) < TYPO_MIN_LETTERS:
        rows = list(similar_titles)
    else:
        # A typo ("cutcle", "polsh") is all there is to go on, so take spellings further off
        # than pg_trgm's default cut-off lets through, if they are alike as whole words (not
        # "table" inside "Adjustable").
        rows = [
            row
            for row in _with_word_similarity(TYPO_WORD_SIMILARITY, similar_titles)
            if row[2] >= TYPO_STRICT_SIMILARITY
        ]
    words = _words(wanted)
    near = {
        pid: _near_score(float(similarity), answered, _respells(title, words))
        for pid, similarity, _strict, title in rows
    }
    # Trigrams know no NOT: "shampoo -dry" is near "Dry shampoo spray".
    for pid in negated_hits(query, list(near)):
        del near[pid]
    return near


def _near_score(similarity: float, answered: bool, respelling: bool) -> float:
    if not answered:
        return similarity * NEAR_SHARE
    if respelling:
        return RESPELLING_SCORE + similarity * (0.5 - RESPELLING_SCORE)
    return similarity * NEAR_SHARE_BESIDE_EXACT


def _respells(title: str, query_words: list[str]) -> bool:
    """Whether the title holds every word of the query, one at least spelt another way
    ("daily moisturizer" and "Daily Moisturiser"), rather than only some of them ("green
    tea" and "Green Thumb") or a longer word that starts with one ("tea" and "teaser")."""
    title_words = set(_words(title))
    respelt = False
    for word in query_words:
        if word in title_words:
            continue
        if not any(
            not other.startswith(word) and _trigram_similarity(word, other) >= RESPELLING
            for other in title_words
        ):
            return False
        respelt = True
    return respelt


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def _trigram_similarity(word: str, other: str) -> float:
    """pg_trgm's similarity of two single words: shared trigrams of the padded words over all."""
    first, second = _trigrams(word), _trigrams(other)
    return len(first & second) / len(first | second)


def _trigrams(word: str) -> set[str]:
    padded = f"  {word} "
    return {padded[i : i + 3] for i in range(len(padded) - 2)}


def _any_available(product_ids: Iterable[str]) -> bool:
    """Whether any of these products may be shown now (active and in stock)."""
    keys = list(product_ids)
    return bool(keys) and get_product_adapter().available_queryset().filter(pk__in=keys).exists()


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
    """Those of `product_ids` that match a word the query excludes ("-bassline"), or whose
    title holds Chinese, Japanese or Korean text it excludes ("-蓝牙")."""
    excluded = [term.lstrip("-") for term in NEGATED.findall(query)]
    excluded = [term for term in excluded if term.strip('"')]
    if not excluded or not product_ids:
        return set()
    matches = Q(search_vector=_search_query(" or ".join(excluded)))
    for run in CJK_RUN.findall(" ".join(excluded)):
        matches |= Q(title__contains=run)
    matching = ProductDocument.objects.filter(matches, product_id__in=product_ids)
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
