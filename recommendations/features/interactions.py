"""Weighted, time-decayed interactions (who touched which product, when, how strongly).

`load_interactions` is the one place the features read behaviour events; it reads `Event`
rows itself until the events layer's preprocessing (bot and duplicate cleaning) is switched in.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
from django.db.models import Q

from recommendations.conf import rec_settings
from recommendations.models import Event, EventType

SECONDS_PER_DAY = 86_400.0


@dataclass
class Interactions:
    """Parallel arrays, one entry per product event worth learning from (weight > 0).

    `actors` are shopper keys: "u:<user pk>" for signed-in users, "s:<session>" otherwise;
    `user_ids` holds the user pk or -1. `weights` = event-type weight x time decay.
    """

    actors: np.ndarray
    user_ids: np.ndarray
    products: np.ndarray
    timestamps: np.ndarray
    weights: np.ndarray
    revenue: np.ndarray

    def __len__(self) -> int:
        return len(self.actors)

    def select(self, keep: np.ndarray) -> Interactions:
        return Interactions(
            self.actors[keep],
            self.user_ids[keep],
            self.products[keep],
            self.timestamps[keep],
            self.weights[keep],
            self.revenue[keep],
        )


def event_weights(event_types: np.ndarray, values: np.ndarray) -> np.ndarray:
    """`EVENT_WEIGHTS` by type; ratings by `RATING_WEIGHTS[value]` (unlisted types weigh 0)."""
    weights = np.zeros(len(event_types), dtype=np.float64)
    for event_type, weight in rec_settings.EVENT_WEIGHTS.items():
        weights[event_types == event_type] = weight
    is_rating = event_types == EventType.RATING
    for rating, weight in rec_settings.RATING_WEIGHTS.items():
        weights[is_rating & (np.rint(values) == rating)] = weight
    return weights


def decay(timestamps: np.ndarray, now: float) -> np.ndarray:
    """0.5 ** (age / DECAY_HALF_LIFE_DAYS): recent behaviour says more about taste today."""
    age_days = np.maximum(now - timestamps, 0.0) / SECONDS_PER_DAY
    return 0.5 ** (age_days / float(rec_settings.DECAY_HALF_LIFE_DAYS))


def load_interactions(start: dt.datetime | None, end: dt.datetime) -> Interactions:
    """Product events between `start` (None = from the beginning) and `end`, weighted."""
    events = Event.objects.filter(timestamp__lte=end).exclude(product_id="")
    if start is not None:
        events = events.filter(timestamp__gte=start)
    types = set(rec_settings.EVENT_WEIGHTS) | {EventType.RATING}
    events = events.filter(event_type__in=types).filter(Q(user__isnull=False) | ~Q(session_id=""))
    rows = list(
        events.order_by("timestamp", "id").values_list(
            "user_id", "session_id", "product_id", "timestamp", "event_type", "value", "revenue"
        )
    )
    user_ids = np.array([-1 if r[0] is None else r[0] for r in rows], dtype=np.int64)
    actors = np.array([f"u:{r[0]}" if r[0] is not None else f"s:{r[1]}" for r in rows], dtype=object)
    timestamps = np.array([r[3].timestamp() for r in rows], dtype=np.float64)
    event_types = np.array([r[4] for r in rows], dtype=object)
    values = np.array([np.nan if r[5] is None else r[5] for r in rows], dtype=np.float64)
    weights = event_weights(event_types, values) * decay(timestamps, end.timestamp())
    interactions = Interactions(
        actors=actors,
        user_ids=user_ids,
        products=np.array([r[2] for r in rows], dtype=object),
        timestamps=timestamps,
        weights=weights.astype(np.float32),
        revenue=np.array([float(r[6] or 0) for r in rows], dtype=np.float64),
    )
    return interactions.select(interactions.weights > 0)
