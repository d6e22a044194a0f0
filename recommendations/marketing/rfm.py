"""RFM segments of signed-in customers: recency, frequency and monetary value of purchases.

Member benefits are aimed by segment, not by taste:

- `loyal_high_spender`: bought on at least `loyal_min_orders` days, spends in the top
  quarter, and bought recently -> points offers, early access;
- `lapsing`: bought on two or more days but not for `lapsed_days` -> win-back offers;
- `new_customer`: one purchase day, recently -> a welcome offer;
- `occasional`: everyone else who ever bought.

Frequency counts distinct purchase *days*, so one order of five lines is one visit. The
high-spend threshold is a quantile of all customers' spend, so it adapts to the shop's
prices and currency; it is cached for an hour for per-visitor lookups.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from django.db.models import Count, Max, QuerySet, Sum
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from recommendations.models import Event, EventType
from recommendations.serving.cache import from_cache

THRESHOLD_CACHE_KEY = "recommendations:rfm:high-spend"
THRESHOLD_CACHE_SECONDS = 3600


@dataclass(frozen=True)
class RfmThresholds:
    recent_days: int = 90
    lapsed_days: int = 90
    loyal_min_orders: int = 3
    high_spend_quantile: float = 0.75


@dataclass(frozen=True)
class CustomerRfm:
    user_id: Any
    recency_days: float
    frequency: int
    monetary: float
    segment: str


def classify(
    recency_days: float, frequency: int, monetary: float, high_spend: float, thresholds: RfmThresholds
) -> str:
    """The segment of one customer (see the module docstring)."""
    if (
        frequency >= thresholds.loyal_min_orders
        and monetary >= high_spend
        and recency_days <= thresholds.recent_days
    ):
        return "loyal_high_spender"
    if frequency >= 2 and recency_days > thresholds.lapsed_days:
        return "lapsing"
    if frequency == 1 and recency_days <= thresholds.recent_days:
        return "new_customer"
    return "occasional"


def _per_customer(user_id: Any = None) -> QuerySet:
    purchases = Event.objects.filter(event_type=EventType.PURCHASE, user__isnull=False)
    if user_id is not None:
        purchases = purchases.filter(user_id=user_id)
    return (
        purchases.values("user_id")
        .annotate(
            last=Max("timestamp"),
            days=Count(TruncDate("timestamp"), distinct=True),
            spend=Coalesce(Sum("revenue"), 0, output_field=Event._meta.get_field("revenue")),
        )
        .order_by("user_id")
    )


def _quantile(spends: Iterable[Any], q: float) -> float:
    values = np.fromiter((float(s) for s in spends), dtype=float)
    return float(np.quantile(values, q)) if values.size else 0.0


def high_spend_threshold(thresholds: RfmThresholds = RfmThresholds()) -> float:
    """Spend at the configured quantile of all customers (cached; 0 with no customers)."""
    quantile = thresholds.high_spend_quantile
    return from_cache(
        f"{THRESHOLD_CACHE_KEY}:{quantile}",
        lambda: _quantile(_per_customer().values_list("spend", flat=True), quantile),
        THRESHOLD_CACHE_SECONDS,
    )


def _row(row: dict[str, Any], now: dt.datetime, high_spend: float, thresholds: RfmThresholds) -> CustomerRfm:
    recency = (now - row["last"]).total_seconds() / 86_400.0
    monetary = float(row["spend"])
    return CustomerRfm(
        row["user_id"],
        recency,
        row["days"],
        monetary,
        classify(recency, row["days"], monetary, high_spend, thresholds),
    )


def customers(
    now: dt.datetime | None = None, thresholds: RfmThresholds = RfmThresholds()
) -> Iterator[CustomerRfm]:
    """Every customer who ever bought, with their segment (one grouped query)."""
    now = now or timezone.now()
    rows = list(_per_customer())
    high_spend = _quantile((r["spend"] for r in rows), thresholds.high_spend_quantile)
    for row in rows:
        yield _row(row, now, high_spend, thresholds)


def customer_rfm(
    user_id: Any, now: dt.datetime | None = None, thresholds: RfmThresholds = RfmThresholds()
) -> CustomerRfm | None:
    """One customer's RFM and segment, or None if they never bought."""
    row = _per_customer(user_id).first()
    if row is None:
        return None
    return _row(row, now or timezone.now(), high_spend_threshold(thresholds), thresholds)
