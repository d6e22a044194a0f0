"""Offline evaluation on the database: nothing the split holds out reaches the model."""

import datetime as dt
from decimal import Decimal

import numpy as np
import pytest
from django.utils import timezone

from recommendations import training
from recommendations.features import build_training_data
from recommendations.learning.dataset import leave_one_out_split
from recommendations.learning.evaluation import compare
from recommendations.learning.two_tower import TwoTowerRecommender
from recommendations.models import Event


class ScoresKept(TwoTowerRecommender):
    """The two-tower model, keeping the scores the evaluation ranked."""

    def score_users(self, *args, **kwargs):
        self.scores = super().score_users(*args, **kwargs)
        return self.scores


def evaluated_scores(now: dt.datetime) -> np.ndarray:
    """Fit the two-tower model on a leave-one-out split of the database and evaluate it."""
    split = leave_one_out_split(build_training_data(now=now).interactions)
    model = ScoresKept(training.model_config())
    compare({"two_tower": model}, split, log=None)
    return model.scores


def test_a_test_target_changes_nothing_the_two_tower_model_is_fitted_or_scored_with(shop):
    now = timezone.now()
    data = build_training_data(now=now)
    split = leave_one_out_split(data.interactions)
    user, target = split.test.users[0], split.test.targets[0][0]
    # The target is the user's first event with that product.
    event = (
        Event.objects.filter(user_id=data.user_ids[user], product_id=data.catalogue.items.keys[target])
        .order_by("timestamp")
        .first()
    )
    assert event.timestamp < Event.objects.latest("timestamp").timestamp  # not the decay's reference
    before = evaluated_scores(now)
    # A big purchase a minute later: it would move the shopper's spend (and recency) features.
    Event.objects.filter(pk=event.pk).update(
        event_type="purchase", revenue=Decimal("4000.00"), timestamp=event.timestamp + dt.timedelta(minutes=1)
    )
    assert np.array_equal(evaluated_scores(now), before)


def test_the_popularity_baseline_decays_events_once_by_the_half_life(shop):
    """The pipeline's weights are already decayed by DECAY_HALF_LIFE_DAYS (60 days)."""
    Event.objects.all().delete()
    products = shop.products
    newest = timezone.now() - dt.timedelta(days=1)
    half_life_ago = newest - dt.timedelta(days=60)
    Event.objects.bulk_create(
        Event(event_type="view", session_id=session, product_id=str(products[p].pk), timestamp=moment)
        for session, p, moment in [
            ("a", 0, half_life_ago),
            ("a", 1, newest),
            ("b", 0, half_life_ago),
            ("b", 2, newest),
        ]
    )
    data = build_training_data()
    n_items = data.interactions.n_items
    popularity = training.recommenders(n_items, training.model_config())["popularity"].fit(data.interactions)
    scores = dict(zip(data.catalogue.items.keys, popularity.item_scores, strict=True))
    # Two views one half-life old weigh as much as one view of today.
    assert scores[str(products[0].pk)] == pytest.approx(scores[str(products[1].pk)], rel=1e-4)
