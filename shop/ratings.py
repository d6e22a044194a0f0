"""Product ratings (average and count) from the engine's rating events.

Listings annotate their QuerySet (`with_ratings`); recommendation blocks, which get their
products from the serving layer, attach them in one query per block (`attach_ratings`).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Avg, CharField, Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Cast

from recommendations.models import Event, EventType
from shop.models import Product


def _rating_events() -> QuerySet[Event]:
    return Event.objects.filter(event_type=EventType.RATING)


def with_ratings(products: QuerySet[Product]) -> QuerySet[Product]:
    """Annotate `rating` (average 1-5, None without ratings) and `rating_count`."""
    ratings = (
        _rating_events()
        .filter(product_id=Cast(OuterRef("pk"), output_field=CharField()))
        .values("product_id")
        .annotate(avg=Avg("value"), n=Count("id"))
    )
    return products.annotate(
        rating=Subquery(ratings.values("avg")[:1]),
        rating_count=Subquery(ratings.values("n")[:1], output_field=IntegerField()),
    )


def attach_ratings(products: Iterable[Product]) -> None:
    """Set `rating` and `rating_count` on products that lack them, with one query."""
    missing = {str(p.pk): p for p in products if not hasattr(p, "rating_count")}
    if not missing:
        return
    stats = {
        row["product_id"]: row
        for row in _rating_events()
        .filter(product_id__in=missing)
        .values("product_id")
        .annotate(avg=Avg("value"), n=Count("id"))
    }
    for key, product in missing.items():
        row = stats.get(key)
        product.rating = row["avg"] if row else None
        product.rating_count = row["n"] if row else 0
