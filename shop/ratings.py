"""Product ratings (average and count) from the engine's rating events.

Pages attach them to the products they show, in one query (`attach_ratings`): a listing once
it is cut into a page, a recommendation block once serving gave its products. Annotated on a
listing's QuerySet instead, they were computed for every product its OFFSET skipped (3.5 s
for the last page of a 61,000-product category).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Avg, Count

from recommendations.models import Event, EventType
from shop.models import Product


def attach_ratings(products: Iterable[Product]) -> None:
    """Set `rating` (average 1-5, None without ratings) and `rating_count` on products that
    lack them, with one query."""
    missing = {str(p.pk): p for p in products if not hasattr(p, "rating_count")}
    if not missing:
        return
    stats = {
        row["product_id"]: row
        for row in Event.objects.filter(event_type=EventType.RATING, product_id__in=missing)
        .values("product_id")
        .annotate(avg=Avg("value"), n=Count("id"))
    }
    for key, product in missing.items():
        row = stats.get(key)
        product.rating = row["avg"] if row else None
        product.rating_count = row["n"] if row else 0
