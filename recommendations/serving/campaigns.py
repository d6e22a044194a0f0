"""A ranking hook: which of several product sets suits a visitor best.

A host passes each set's products (or a sample of them) and gets the sets back in order of
affinity, each with its score and a short reason. The scores order the sets of one visitor
and are not on a fixed scale; campaign targeting (`marketing.targeting`) scores with
`marketing.interest` instead, so that a campaign's `min_score` means the same on the
storefront and in its saved audience.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from recommendations.models import PairKind
from recommendations.serving import statistics, variants
from recommendations.serving.history import recent_history
from recommendations.serving.realtime import current_taste
from recommendations.serving.types import Audience
from recommendations.vectors import queries

# Products per set that are scored, and how many of the best count towards the set's score.
MAX_PRODUCTS_PER_SET = 200
TOP_MATCHES = 3


@dataclass(frozen=True)
class RankedSet:
    key: Hashable
    score: float
    reason: str


def rank_product_sets(audience: Audience, product_sets: Mapping[Hashable, Iterable[str]]) -> list[RankedSet]:
    """Rank the sets (campaign id -> product ids) for this visitor, best first.

    With a model: the mean of the TOP_MATCHES best taste scores among each set's products.
    Without: how strongly the set goes with what the visitor did lately (co-occurrence,
    products in common), then its popularity. Empty sets score 0.
    """
    sets = {
        key: list(dict.fromkeys(str(p) for p in ids))[:MAX_PRODUCTS_PER_SET]
        for key, ids in product_sets.items()
    }
    every = {pid for ids in sets.values() for pid in ids}
    history = recent_history(audience)
    version = variants.model_version(audience)
    item_scores: dict[str, float] = {}
    reason = "Matches what you like"
    if version is not None and every:
        taste = current_taste(version, audience)
        if taste.vector is not None:
            item_scores = {
                pid: float(v.embedding @ taste.vector) + v.bias
                for pid, v in queries.product_vectors(every, version).items()
            }
    if not item_scores:
        seeds = {pid: 1.0 / (rank + 1) for rank, pid in enumerate(history.product_ids)}
        pairs = statistics.paired_by_kind([PairKind.VIEWED, PairKind.BOUGHT], seeds, len(every) * 4 + 100)
        related = pairs[PairKind.VIEWED] + pairs[PairKind.BOUGHT]
        popular = statistics.popularity(every)
        top = max(popular.values(), default=0.0) or 1.0
        item_scores = {pid: popular.get(pid, 0.0) / top * 0.1 for pid in every}
        for candidate in related:
            if candidate.product_id in item_scores:
                item_scores[candidate.product_id] += candidate.score
        for pid in seeds:
            if pid in item_scores:
                item_scores[pid] += 1.0
        reason = "Goes with what you looked at" if seeds else "Popular with shoppers"
    ranked = []
    for key, ids in sets.items():
        scores = sorted((item_scores[pid] for pid in ids if pid in item_scores), reverse=True)
        score = float(np.mean(scores[:TOP_MATCHES])) if scores else 0.0
        ranked.append(RankedSet(key, score, reason if scores else "No products to match"))
    ranked.sort(key=lambda r: -r.score)
    return ranked
