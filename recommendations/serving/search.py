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

import numpy as np
from django.contrib.postgres.search import SearchQuery, SearchRank, TrigramWordSimilarity
from django.db.models import F

from recommendations.models import ProductDocument
from recommendations.models.search import TEXT_SEARCH_CONFIG
from recommendations.serving import variants
from recommendations.serving.cache import cached
from recommendations.serving.errors import InvalidParameters
from recommendations.serving.history import recent_history
from recommendations.serving.realtime import current_taste
from recommendations.serving.rules import finalize, limit_for
from recommendations.serving.types import Audience, Candidate, Kind, Options, RecommendationResult
from recommendations.vectors import queries

MAX_QUERY_LENGTH = 200
KEYWORD_POOL = 200
# Keyword hits whose vectors define the query's meaning.
FEEDBACK_HITS = 10
WEIGHTS = {"keyword": 0.6, "semantic": 0.25, "taste": 0.15}


def clean_query(query: str | None) -> str:
    """The query trimmed; `InvalidParameters` when it is empty or too long."""
    query = " ".join((query or "").split())
    if not query:
        raise InvalidParameters({"q": "Give a search query, e.g. ?q=running shoes."})
    if len(query) > MAX_QUERY_LENGTH:
        raise InvalidParameters({"q": f"The query is {len(query)} characters; at most {MAX_QUERY_LENGTH}."})
    return query


def keyword_hits(query: str, k: int = KEYWORD_POOL) -> list[tuple[str, float]]:
    """(product id, relevance in 0..1) for products matching the words, or nearly the words.

    Full-text search first (GIN index, stemmed words). Only when it finds fewer than k products
    does trigram word similarity on titles (GIN index) add near matches: typos cost the
    second query, correctly spelled queries do not.
    """
    search_query = SearchQuery(query, search_type="websearch", config=TEXT_SEARCH_CONFIG)
    # ts_rank with normalization 32 lies in [0, 1).
    exact = list(
        ProductDocument.objects.filter(search_vector=search_query)
        .annotate(rank=SearchRank(F("search_vector"), search_query, normalization=32))
        .order_by("-rank", "product_id")
        .values_list("product_id", "rank")[:k]
    )
    hits = {pid: 0.5 + float(rank) / 2 for pid, rank in exact}
    if len(hits) < k:
        near = (
            ProductDocument.objects.filter(title__trigram_word_similar=query)
            .exclude(product_id__in=list(hits))
            .annotate(similarity=TrigramWordSimilarity(query, "title"))
            .order_by("-similarity", "product_id")
            .values_list("product_id", "similarity")[: k - len(hits)]
        )
        # Near matches rank below every exact one.
        hits.update({pid: float(similarity) / 2 for pid, similarity in near})
    return sorted(hits.items(), key=lambda item: -item[1])


def _unit(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-9)


def search(query: str, audience: Audience, options: Options) -> RecommendationResult:
    """Products for `query`, best first, personalised for the visitor when a model is active."""
    query = clean_query(query)
    history = recent_history(audience)
    version = variants.model_version(audience)
    k = limit_for(Kind.SEARCH, options, audience) * 3 + len(options.exclude) + len(audience.shown)

    def compute() -> list[Candidate]:
        hits = keyword_hits(query)
        keyword = dict(hits)
        if version is None:
            return [Candidate(pid, score, "keyword", f"Matches “{query}”") for pid, score in hits]
        embeddings = {
            pid: v.embedding
            for pid, v in queries.product_vectors(
                [pid for pid, _ in hits[: max(k, FEEDBACK_HITS)]], version
            ).items()
        }
        feedback = [(embeddings[pid], score) for pid, score in hits[:FEEDBACK_HITS] if pid in embeddings]
        meaning = None
        if feedback:
            meaning = _unit(sum(score * _unit(embedding) for embedding, score in feedback))
            related = [
                pid
                for pid, _ in queries.nearest_products(meaning, k, version, from_items=True)
                if pid not in embeddings
            ]
            embeddings.update(
                {pid: v.embedding for pid, v in queries.product_vectors(related, version).items()}
            )
        taste = current_taste(version, audience)
        semantic: dict[str, float] = {}
        affinity: dict[str, float] = {}
        ids = list(embeddings)
        if ids and (meaning is not None or taste.vector is not None):
            # Every candidate's direction at once: one matrix product per signal, not a norm each.
            units = _unit(np.stack([embeddings[pid] for pid in ids]))
            if meaning is not None:
                semantic = dict(zip(ids, (units @ meaning).tolist(), strict=True))
            if taste.vector is not None:
                affinity = dict(zip(ids, (units @ _unit(taste.vector)).tolist(), strict=True))
        candidates = []
        for pid in dict.fromkeys([*keyword, *semantic]):
            score = (
                WEIGHTS["keyword"] * keyword.get(pid, 0.0)
                + WEIGHTS["semantic"] * semantic.get(pid, 0.0)
                + WEIGHTS["taste"] * affinity.get(pid, 0.0)
            )
            reason = f"Matches “{query}”" if pid in keyword else f"Related to “{query}”"
            source = "search" if affinity else "keyword" if pid in keyword else "semantic"
            candidates.append(Candidate(pid, score, source, reason, embedding=embeddings.get(pid)))
        return candidates

    key = (Kind.SEARCH, query.lower(), variants.cache_key(audience), version and version.pk, audience.user_id)
    return finalize(
        Kind.SEARCH,
        cached((*key, audience.session_id, history.fingerprint, k), compute),
        audience,
        options,
        model_version_id=version and version.pk,
        context={"query": query},
    )
