"""Slow sellers: well-stocked products that hardly sell, the stuff of flash sales.

Stock is read from the host's table through the adapter's `stock_field`; sales are units
of purchase events (the event's value is the quantity, 1 when absent) over a recent window.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection

from django.core.exceptions import ImproperlyConfigured
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from recommendations.adapters import get_product_adapter
from recommendations.marketing.rules import InventoryRule
from recommendations.models import Event, EventType
from recommendations.serving.compiled import KeyIn
from recommendations.sql import array_literal

# Slow sellers are looked for among the best-stocked products, at most this many.
MAX_CANDIDATES = 5000


def units_sold(product_ids: Collection[str], since: dt.datetime) -> dict[str, float]:
    """Units bought per product since `since` (products with no sale are left out)."""
    rows = (
        Event.objects.filter(
            event_type=EventType.PURCHASE, timestamp__gte=since, product_id__in=list(product_ids)
        )
        .values("product_id")
        .annotate(units=Sum(Coalesce("value", 1.0)))
    )
    return {row["product_id"]: float(row["units"]) for row in rows}


def slow_sellers(
    rule: InventoryRule, within: Collection[str] | None = None, now: dt.datetime | None = None
) -> list[str]:
    """Available products with at least `rule.min_stock` units in stock that sold at most
    `rule.max_units_sold` units in the last `rule.days` days, most stock first.

    `within` narrows the search to these product ids (a campaign's categories or stores), sent
    as one array parameter: a big store's scope is more than a statement's 65,535 parameters.
    """
    adapter = get_product_adapter()
    if not adapter.stock_field:
        raise ImproperlyConfigured(
            f"{type(adapter).__name__} has no stock_field, so flash sales cannot find slow sellers. "
            "Set stock_field on your product adapter, or list the sale's products by hand."
        )
    queryset = adapter.available_queryset().filter(**{f"{adapter.stock_field}__gte": rule.min_stock})
    if within is not None:
        queryset = queryset.filter(KeyIn(adapter.model, array_literal(within)))
    stocked = [
        adapter.key(pk)
        for pk in queryset.order_by(f"-{adapter.stock_field}", "pk").values_list("pk", flat=True)[
            :MAX_CANDIDATES
        ]
    ]
    since = (now or timezone.now()) - dt.timedelta(days=rule.days)
    sold = units_sold(stocked, since)
    return [pid for pid in stocked if sold.get(pid, 0.0) <= rule.max_units_sold][: rule.limit]
