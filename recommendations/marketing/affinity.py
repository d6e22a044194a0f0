"""Interest without a model: how much a shopper's events touch a campaign's products,
stores and categories.

Each event counts with its type's weight (`EVENT_WEIGHTS`) halved every
`DECAY_HALF_LIFE_DAYS`; the sum `s` over the events inside the campaign's scope becomes a
score in [0, 1) as 1 - exp(-s / SATURATION), so one recent purchase (weight 5) scores about
0.63 and more behaviour keeps raising the score without bound on the raw sum.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from django.db.models import Q, Sum
from django.utils import timezone

from recommendations.adapters import get_product_adapter
from recommendations.conf import rec_settings
from recommendations.events.preprocessing import decay, event_weight
from recommendations.marketing.products import CampaignScope, interest_scope, scope_product_ids
from recommendations.models import Campaign, Event
from recommendations.serving.compiled import KeyIn
from recommendations.serving.history import recent_history
from recommendations.serving.statistics import decay_expression, event_weight_expression
from recommendations.serving.types import Audience
from recommendations.sql import array_literal

SATURATION = 5.0
# Events older than this many half-lives weigh under 2% and are not read.
HORIZON_HALF_LIVES = 6
VISITOR_HISTORY = 200


def to_score(weighted_sum: float) -> float:
    return 1.0 - math.exp(-max(weighted_sum, 0.0) / SATURATION)


def visitor_affinity(
    audience: Audience, scopes: Mapping[Any, CampaignScope], now: dt.datetime | None = None
) -> dict[Any, float]:
    """Score of each scope (campaign id -> scope) for one visitor, from their latest events."""
    history = recent_history(audience, size=VISITOR_HISTORY)
    if not history.events or not scopes:
        return dict.fromkeys(scopes, 0.0)
    now = now or timezone.now()
    adapter = get_product_adapter()
    records = {r.id: r for r in adapter.records(adapter.by_keys(history.product_ids))}
    ages = decay(np.array([(now - e.timestamp).total_seconds() for e in history.events]))
    sums = dict.fromkeys(scopes, 0.0)
    for event, age_factor in zip(history.events, ages, strict=True):
        record = records.get(event.product_id)
        if record is None:
            continue
        weight = event_weight(event.event_type, event.value) * float(age_factor)
        for key, scope in scopes.items():
            if scope.matches(record):
                sums[key] += weight
    return {key: to_score(total) for key, total in sums.items()}


def users_by_affinity(
    campaign: Campaign, limit: int, now: dt.datetime | None = None
) -> list[tuple[Any, float]]:
    """The signed-in users with the most weighted, recent events in the campaign's scope (its
    products as one array parameter: a big store's are more than a statement's 65,535)."""
    now = now or timezone.now()
    half_life = rec_settings.DECAY_HALF_LIFE_DAYS
    scope = interest_scope(campaign)
    where = Q(KeyIn(Event, array_literal(scope_product_ids(campaign)), field="product_id"))
    if scope.store_ids:
        where |= Q(store_id__in=list(scope.store_ids))
    decay = decay_expression(now, half_life)
    rows = (
        Event.objects.filter(
            where, user__isnull=False, timestamp__gte=now - dt.timedelta(days=half_life * HORIZON_HALF_LIVES)
        )
        .values("user_id")
        .annotate(total=Sum(event_weight_expression() * decay))
        .filter(total__gt=0)
        .order_by("-total", "user_id")
        .values_list("user_id", "total")[:limit]
    )
    return [(user_id, to_score(total)) for user_id, total in rows]
