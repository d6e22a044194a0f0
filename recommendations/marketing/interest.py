"""Interest with a model: users whose taste vectors point towards a campaign's products.

The campaign is summarised by the mean vector of the products it offers; users are ranked
by cosine similarity between their stored vector and that mean, an exact scan of the
version's user vectors in PostgreSQL (a batch job, so no index is needed). Cosine rather
than inner product, so that heavy shoppers with long vectors do not crowd out everyone
whose taste fits better.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pgvector.django import CosineDistance

from recommendations.marketing.products import offer
from recommendations.models import Campaign, ModelVersion, UserVector
from recommendations.vectors.indexes import embedding_expression
from recommendations.vectors.queries import product_vectors, vector_rows

# Products whose vectors describe a campaign (the first ones of its offer).
MAX_CAMPAIGN_PRODUCTS = 500


def campaign_vector(campaign: Campaign, version: ModelVersion) -> np.ndarray | None:
    """Unit-length mean of the offer's product vectors, or None when none has a vector."""
    found = product_vectors(offer(campaign)[:MAX_CAMPAIGN_PRODUCTS], version)
    if not found:
        return None
    mean = np.mean(np.stack([v.embedding for v in found.values()]), axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm > 0 else None


def users_by_interest(
    campaign: Campaign, version: ModelVersion, limit: int
) -> list[tuple[Any, float]] | None:
    """The `limit` users most aligned with the campaign (user id, cosine), or None when the
    campaign's products have no vectors in this version (the caller falls back)."""
    target = campaign_vector(campaign, version)
    if target is None:
        return None
    distance = CosineDistance(embedding_expression(version.dimensions), target.tolist())
    rows = (
        vector_rows(UserVector)
        .filter(model_version_id=version.pk)
        .annotate(distance=distance)
        .order_by("distance", "user_id")
        .values_list("user_id", "distance")[:limit]
    )
    return [(user_id, 1.0 - float(dist)) for user_id, dist in rows]
