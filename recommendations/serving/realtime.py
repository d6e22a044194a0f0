"""A visitor's taste right now: the stored user vector moved towards what they just did.

Retraining takes hours; a shopper who views three hiking boots expects boots on the next
page. The stored vector (from training) is blended with the weighted mean of the vectors
of the products in the latest events, each weighted by its event type and decayed with
`REALTIME_HALF_LIFE_MINUTES`. An anonymous session or a user the model has not seen gets
the session part alone. Item vectors live in the same space as user vectors (score =
user . item + bias), so their mean is a user vector that scores their neighbours highly.
This is numpy on at most `REALTIME_HISTORY` vectors: no model is loaded on the request path.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.events.preprocessing import event_weight
from recommendations.models import ModelVersion
from recommendations.serving.cache import cached
from recommendations.serving.history import MIN_WEIGHT, History, half_life_minutes, recent_history
from recommendations.serving.types import Audience
from recommendations.vectors import queries


@dataclass
class Taste:
    """The vector to score products with, and the history vectors behind it."""

    vector: np.ndarray | None
    # "stored" (training time only), "session" (recent events only) or "realtime" (both).
    basis: str
    history_vectors: dict[str, np.ndarray] = field(default_factory=dict)
    # With the "stored" basis: the products the stored vector scores best, best first, with
    # their scores, when the version precomputed them (`vectors.lists`); else empty.
    ranked: list[tuple[str, float]] = field(default_factory=list)

    def closest_history_item(self, embedding: np.ndarray) -> tuple[str, float] | None:
        """The recent product most like `embedding`, with its cosine: what "because you viewed
        X" names, and how much like X the product is."""
        if not self.history_vectors:
            return None
        keys = list(self.history_vectors)
        matrix = np.stack([self.history_vectors[k] for k in keys])
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(embedding) or 1.0)
        cosines = matrix @ embedding / np.maximum(norms, 1e-9)
        best = int(np.argmax(cosines))
        return keys[best], float(cosines[best])


def recent_weights(history: History) -> dict[str, float]:
    """Per product: the summed event weights, decayed; events too old to matter are left out."""
    now = timezone.now()
    half_life = half_life_minutes()
    weights: dict[str, float] = {}
    for event in history.events:
        age_minutes = max((now - event.timestamp).total_seconds() / 60.0, 0.0)
        weight = event_weight(event.event_type, event.value) * 0.5 ** (age_minutes / half_life)
        if weight > MIN_WEIGHT:
            weights[event.product_id] = weights.get(event.product_id, 0.0) + weight
    return weights


def session_vector(weights: dict[str, float], item_vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    """Weighted mean of the vectors of recently touched products (None when none has one)."""
    known = [(item_vectors[pid], w) for pid, w in weights.items() if pid in item_vectors and w > 0]
    if not known:
        return None
    total = sum(w for _, w in known)
    return np.sum([v.astype(np.float64) * w for v, w in known], axis=0) / total


def stored_vector(version: ModelVersion, user_id: int) -> np.ndarray | None:
    """The user's vector as of the version's training; a version's vectors never change, so it
    is cached like candidate lists (`SERVING_CACHE_SECONDS`), "no vector" included."""
    found = cached(("user_vector", version.pk, user_id), lambda: (queries.user_vector(user_id, version),))
    return found[0]


def current_taste(version: ModelVersion, audience: Audience) -> Taste:
    """Blend the stored vector of the visitor with their session; two indexed queries at most,
    once per `Audience` and version (every block of a page shares it).

    The session's share grows with how much happened lately: a fresh product view (weight 1)
    gives it the full `REALTIME_SESSION_WEIGHT`; a view hours ago only a little.
    """
    key = ("taste", version.pk)
    if key not in audience.memo:
        audience.memo[key] = _blend(version, audience.user_id, recent_history(audience))
    return audience.memo[key]


def _blend(version: ModelVersion, user_id: int | None, history: History) -> Taste:
    brought = history.vectors_version == version.pk  # the history read brought the vectors
    stored = None
    if user_id is not None:
        stored = history.user_vector if brought else stored_vector(version, user_id)
    weights = recent_weights(history)
    if brought:
        item_vectors = {k: history.vectors[k] for k in weights if k in history.vectors}
    elif weights:
        item_vectors = {k: v.embedding for k, v in queries.product_vectors(list(weights), version).items()}
    else:
        item_vectors = {}
    session = session_vector(weights, item_vectors)
    if session is None:
        return Taste(stored, "stored", item_vectors, history.user_list if brought else [])
    if stored is None:
        return Taste(session.astype(np.float32), "session", item_vectors)
    # Match the session part's length to the stored vector's, so the share is what is configured.
    scale = np.linalg.norm(stored) / max(float(np.linalg.norm(session)), 1e-9)
    share = rec_settings.REALTIME_SESSION_WEIGHT * min(1.0, sum(weights[k] for k in item_vectors))
    blended = (1.0 - share) * stored + share * scale * session
    return Taste(blended.astype(np.float32), "realtime", item_vectors)
