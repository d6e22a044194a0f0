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
from recommendations.serving.history import History
from recommendations.vectors import queries


@dataclass
class Taste:
    """The vector to score products with, and the history vectors behind it."""

    vector: np.ndarray | None
    # "stored" (training time only), "session" (recent events only) or "realtime" (both).
    basis: str
    history_vectors: dict[str, np.ndarray] = field(default_factory=dict)

    def closest_history_item(self, embedding: np.ndarray) -> str | None:
        """The recent product most like `embedding`: what "because you viewed X" names."""
        if not self.history_vectors:
            return None
        keys = list(self.history_vectors)
        matrix = np.stack([self.history_vectors[k] for k in keys])
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(embedding) or 1.0)
        return keys[int(np.argmax(matrix @ embedding / np.maximum(norms, 1e-9)))]


def session_vector(history: History, item_vectors: dict[str, np.ndarray]) -> np.ndarray | None:
    """Decayed, event-weighted mean of the vectors of recently touched products."""
    now = timezone.now()
    half_life = max(rec_settings.REALTIME_HALF_LIFE_MINUTES, 1e-3)
    total = None
    weight_sum = 0.0
    for event in history.events:
        embedding = item_vectors.get(event.product_id)
        if embedding is None:
            continue
        age_minutes = max((now - event.timestamp).total_seconds() / 60.0, 0.0)
        weight = event_weight(event.event_type, event.value) * 0.5 ** (age_minutes / half_life)
        if weight <= 0:
            continue
        total = embedding * weight if total is None else total + embedding * weight
        weight_sum += weight
    if total is None or weight_sum <= 0:
        return None
    return total / weight_sum


def current_taste(version: ModelVersion, user_id: int | None, history: History) -> Taste:
    """Blend the stored vector of `user_id` with the session; two indexed queries at most."""
    stored = queries.user_vector(user_id, version) if user_id is not None else None
    item_vectors = (
        {k: v.embedding for k, v in queries.product_vectors(history.product_ids, version).items()}
        if history.events
        else {}
    )
    session = session_vector(history, item_vectors)
    if session is None:
        return Taste(stored, "stored", item_vectors)
    if stored is None:
        return Taste(session, "session", item_vectors)
    # Match the session part's length to the stored vector's, so the share is what is configured.
    scale = np.linalg.norm(stored) / max(float(np.linalg.norm(session)), 1e-9)
    share = rec_settings.REALTIME_SESSION_WEIGHT
    return Taste((1.0 - share) * stored + share * scale * session, "realtime", item_vectors)
