"""Interest with a model: users whose taste vectors point towards a campaign's products.

The campaign is summarised by the mean vector of the products it offers (its direction); users
are ranked by cosine similarity between their stored vector and that mean, an exact scan of the
version's user vectors in PostgreSQL (a batch job, so no index is needed). Cosine rather
than inner product, so that heavy shoppers with long vectors do not crowd out everyone
whose taste fits better.

Interest is on the scale of the campaign's `min_score` rule, 0 to 1: the cosine, 0 when the
taste points away from the campaign. The storefront (`targeting.campaigns_for`) scores one
visitor with `visitor_interest` on the same scale, so a campaign's saved audience and the
shoppers it is shown to on the site agree. The storefront asks on every page, so it reads each
campaign's direction from the cache (`campaign_directions`), made of the products the campaign
offered when it was computed: keyed by the products offered now, it read the stock of 500
products of every campaign on every page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from django.db.models import Exists
from pgvector.django import CosineDistance

from recommendations.marketing.products import CACHE_SECONDS, cache_key, offer, offers
from recommendations.models import Campaign, ModelVersion, ProductVector, UserVector
from recommendations.serving.cache import many_from_cache
from recommendations.serving.compiled import KeyIn
from recommendations.sql import array_literal
from recommendations.vectors.indexes import embedding_expression
from recommendations.vectors.queries import product_vectors, vector_rows

# Products whose vectors describe a campaign (the first ones of its offer).
MAX_CAMPAIGN_PRODUCTS = 500
# The cached direction of a campaign whose products have no vectors (None reads as not cached).
_NO_DIRECTION = np.zeros(0, dtype=np.float32)


def campaign_vector(campaign: Campaign, version: ModelVersion) -> np.ndarray | None:
    """Unit-length mean of the offer's product vectors, or None when none has a vector."""
    return campaign_vectors({campaign.pk: offer(campaign, MAX_CAMPAIGN_PRODUCTS)}, version).get(campaign.pk)


def campaign_vectors(offered: Mapping[int, Sequence[str]], version: ModelVersion) -> dict[int, np.ndarray]:
    """`campaign_vector` of each offer (campaign id -> product ids) in one query; campaigns
    whose products have no vector are left out."""
    offered = {pk: list(ids[:MAX_CAMPAIGN_PRODUCTS]) for pk, ids in offered.items()}
    found = product_vectors({pid for ids in offered.values() for pid in ids}, version)
    directions = {}
    for pk, ids in offered.items():
        embeddings = [found[pid].embedding for pid in ids if pid in found]
        if not embeddings:
            continue
        mean = np.mean(np.stack(embeddings), axis=0)
        norm = float(np.linalg.norm(mean))
        if norm > 0:
            directions[pk] = mean / norm
    return directions


def campaign_directions(campaigns: Sequence[Campaign], version: ModelVersion) -> dict[int, np.ndarray]:
    """`campaign_vector` of each campaign, cached for `CACHE_SECONDS` per campaign edit and
    model version; those not cached are read together (their offers, then one query for the
    vectors). Campaigns whose products have no vector are left out."""
    keys = {c.pk: _direction_key(c, "direction", version) for c in campaigns}
    by_pk = {c.pk: c for c in campaigns}

    def compute(missing: list[int]) -> dict[int, np.ndarray]:
        offered = offers([by_pk[pk] for pk in missing], MAX_CAMPAIGN_PRODUCTS)
        found = campaign_vectors(offered, version)
        return {pk: found.get(pk, _NO_DIRECTION) for pk in missing}

    directions = many_from_cache(keys, compute, CACHE_SECONDS)
    return {pk: direction for pk, direction in directions.items() if direction.size}


def campaigns_with_vectors(campaigns: Sequence[Campaign], version: ModelVersion) -> set[int]:
    """Ids of the campaigns that have a direction (`campaign_directions`), without reading a
    vector: whether one of the products offered has one, an EXISTS per campaign in one query,
    cached as the directions are. A visitor without a taste needs no more."""
    keys = {c.pk: _direction_key(c, "with-vectors", version) for c in campaigns}
    by_pk = {c.pk: c for c in campaigns}

    def compute(missing: list[int]) -> dict[int, bool]:
        offered = offers([by_pk[pk] for pk in missing], MAX_CAMPAIGN_PRODUCTS)
        checks = {
            f"c{pk}": Exists(
                ProductVector.objects.filter(
                    KeyIn(ProductVector, array_literal(offered[pk]), field="product_id"),
                    model_version_id=version.pk,
                )
            )
            for pk in missing
        }
        found = ModelVersion.objects.filter(pk=version.pk).values(**checks).first() or {}
        return {pk: bool(found.get(f"c{pk}")) for pk in missing}

    return {pk for pk, with_vectors in many_from_cache(keys, compute, CACHE_SECONDS).items() if with_vectors}


def _direction_key(campaign: Campaign, part: str, version: ModelVersion) -> str:
    """Per campaign edit (a flash sale's choice of products included) and model version."""
    return f"{cache_key(campaign, part)}:{version.pk}"


def to_interest(cosine: float) -> float:
    """A cosine as interest on the 0-1 scale of `min_score`: pointing away counts as none."""
    return min(max(float(cosine), 0.0), 1.0)


def visitor_interest(taste: np.ndarray | None, direction: np.ndarray) -> float:
    """One visitor's interest in a campaign (`campaign_vector`): what `users_by_interest`
    gives them, from the taste serving uses now; 0 without a taste vector."""
    if taste is None:
        return 0.0
    norm = float(np.linalg.norm(taste))
    return to_interest(float(taste @ direction) / norm) if norm > 0 else 0.0


def users_by_interest(target: np.ndarray, version: ModelVersion, limit: int) -> list[tuple[Any, float]]:
    """The `limit` users most aligned with a campaign's direction (`campaign_vector`), as
    (user id, cosine). Users whose taste points away from the campaign score 0 (`to_interest`)."""
    distance = CosineDistance(embedding_expression(version.dimensions), target.tolist())
    rows = (
        vector_rows(UserVector)
        .filter(model_version_id=version.pk)
        .annotate(distance=distance)
        .order_by("distance", "user_id")
        .values_list("user_id", "distance")[:limit]
    )
    return [(user_id, to_interest(1.0 - float(dist))) for user_id, dist in rows]
