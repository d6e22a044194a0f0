"""Weighted, time-decayed product interactions: who touched which product, when, how much.

The events layer cleans the stored events (bots, duplicates, unknown or inactive products)
and weighs them by type and age (`recommendations.events.preprocessing.clean_events`); this
module keeps the product events among them, in the shape the features are built from.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import numpy as np

from recommendations.events.preprocessing import clean_events


@dataclass
class Interactions:
    """Parallel arrays, one entry per product event worth learning from (weight > 0).

    `actors` are shopper keys: "u:<user pk>" for signed-in users, "s:<session>" otherwise;
    `user_ids` holds the user's primary key or None (objects, so UUID keys work too).
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


def load_interactions(start: dt.datetime | None, end: dt.datetime) -> Interactions:
    """Clean product events in [start, end) (from the beginning when `start` is None)."""
    events = clean_events(since=start, until=end)
    keep = (events.items >= 0) & (events.weights > 0)
    actor_keys = np.array(events.actor_keys, dtype=object)
    users: list[Any] = events.actor_user_ids
    item_keys = np.array(events.item_keys, dtype=object)
    actors = events.actors[keep]
    return Interactions(
        actors=actor_keys[actors] if len(actors) else np.zeros(0, dtype=object),
        user_ids=np.array([users[a] for a in actors], dtype=object),
        products=item_keys[events.items[keep]] if keep.any() else np.zeros(0, dtype=object),
        timestamps=events.timestamps[keep].astype(np.float64),
        weights=events.weights[keep],
        revenue=events.revenue[keep],
    )
