"""The learning core's input, built from the database: catalogue + behaviour, as indices."""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from dataclasses import dataclass

import numpy as np
from django.utils import timezone

from recommendations.features.catalogue import Catalogue, load_catalogue
from recommendations.features.interactions import Interactions, load_interactions
from recommendations.features.keys import KeyIndex
from recommendations.learning.dataset import InteractionData
from recommendations.learning.features import ItemFeaturizer, RFMFeaturizer

logger = logging.getLogger(__name__)

MIN_SHOPPERS = 2
MIN_PRODUCTS_WITH_EVENTS = 2


class InsufficientData(Exception):
    """There is not enough behaviour to learn from; the message says what is missing."""


@dataclass
class TrainingData:
    """Everything a model is fitted on, and the maps back to the host's keys.

    Item index i is `catalogue.items.keys[i]`; shopper index u is `actors.keys[u]`, a
    signed-in user ("u:<pk>", `user_ids[u]` = pk) or an anonymous session (`user_ids[u]` = None).
    `window_start` and `window_end` are the times of the oldest and newest event trained on:
    the data the model saw, whatever window was asked for (imported history may end years ago).
    """

    interactions: InteractionData
    catalogue: Catalogue
    actors: KeyIndex
    user_ids: np.ndarray
    featurizer: ItemFeaturizer
    window_start: dt.datetime
    window_end: dt.datetime

    @property
    def n_events(self) -> int:
        return self.interactions.n_interactions

    def describe(self) -> str:
        return (
            f"{self.n_events} interactions of {len(self.actors)} shoppers with "
            f"{int((self.interactions.item_popularity() > 0).sum())} of {len(self.catalogue.items)} products"
        )


def build_training_data(
    window_days: float | None = None, now: dt.datetime | None = None, *, min_history: int = 1
) -> TrainingData:
    """Read the catalogue and the last `window_days` of events (all when None).

    Shoppers with fewer than `min_history` interactions are left out. Raises
    `InsufficientData` when there is nothing a model could learn, and `ValueError` for a window
    that is not a number of days > 0 (0 or NaN would otherwise read as "all events" or fail
    deep in datetime arithmetic).
    """
    check_window_days(window_days)
    started = time.perf_counter()
    end = now or timezone.now()
    start = end - dt.timedelta(days=window_days) if window_days is not None else None
    catalogue = load_catalogue()
    if not catalogue.products:
        raise InsufficientData(
            "The catalogue is empty: the product adapter's index_queryset() returned no products."
        )
    if not catalogue.active.any():
        raise InsufficientData(
            f"All {len(catalogue.products)} products are inactive, so there is nothing to recommend. "
            "Activate some products first."
        )
    events = load_interactions(start, end)
    item_of = np.array(catalogue.items.indices(list(events.products)), dtype=np.int64)
    events = events.select(item_of >= 0)  # products no longer in the catalogue
    item_of = item_of[item_of >= 0]
    _check_enough(events, item_of, window_days)

    actors, actor_of = np.unique(events.actors.astype(str), return_inverse=True)
    counts = np.bincount(actor_of, minlength=len(actors))
    keep = counts[actor_of] >= min_history
    events, item_of, actor_of = events.select(keep), item_of[keep], actor_of[keep]
    actors, actor_of = np.unique(events.actors.astype(str), return_inverse=True)
    _check_enough(events, item_of, window_days)

    featurizer = ItemFeaturizer()
    item_features = featurizer.fit_transform(catalogue.contents(), now=end.timestamp())
    user_ids = np.full(len(actors), None, dtype=object)
    user_ids[actor_of] = events.user_ids
    interactions = InteractionData.from_arrays(
        actor_of,
        item_of,
        timestamps=events.timestamps.astype(np.int64),
        weights=events.weights,
        n_users=len(actors),
        n_items=len(catalogue.items),
        item_features=item_features,
        revenue=events.revenue,
        # Derived again for every part of the events a split takes, so that a held-out event
        # never reaches the features the evaluation fits or scores with; serving gets these.
        user_featurizer=RFMFeaturizer(now=end.timestamp(), spend=bool(events.revenue.any())),
    )
    data = TrainingData(
        interactions=interactions,
        catalogue=catalogue,
        actors=KeyIndex(actors),
        user_ids=user_ids,
        featurizer=featurizer,
        window_start=_as_datetime(events.timestamps.min()),
        window_end=_as_datetime(events.timestamps.max()),
    )
    logger.info("Built training data in %.1fs: %s", time.perf_counter() - started, data.describe())
    return data


def check_window_days(window_days: float | None) -> None:
    """`ValueError` unless `window_days` is None (all events) or a finite number of days > 0."""
    if window_days is not None and not (math.isfinite(window_days) and window_days > 0):
        raise ValueError(
            f"The window is {window_days!r} days: give a number of days > 0, or none for all events."
        )


def _check_enough(events: Interactions, item_of: np.ndarray, window_days: float | None) -> None:
    window = f"in the last {window_days:g} days" if window_days is not None else "at all"
    if not len(events):
        raise InsufficientData(
            f"There are no product events {window} to learn from (views, carts, purchases of "
            "catalogue products). Track behaviour with recommendations.track() or import history first."
        )
    n_shoppers = len(np.unique(events.actors.astype(str)))
    if n_shoppers < MIN_SHOPPERS:
        raise InsufficientData(
            f"Only {n_shoppers} shopper has product events {window}; at least {MIN_SHOPPERS} are "
            "needed to learn what people have in common."
        )
    n_products = len(np.unique(item_of))
    if n_products < MIN_PRODUCTS_WITH_EVENTS:
        raise InsufficientData(
            f"Only {n_products} product has events {window}; at least {MIN_PRODUCTS_WITH_EVENTS} are needed."
        )
    _, per_shopper = np.unique(events.actors.astype(str), return_counts=True)
    if per_shopper.max() < 2:
        raise InsufficientData(
            f"No shopper has more than one product event {window}: the model learns what people do "
            "next, so it needs shoppers with at least two."
        )


def _as_datetime(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(timestamp), tz=dt.UTC)
