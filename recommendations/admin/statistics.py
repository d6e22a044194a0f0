"""What serving reads (served lists, popularity, product pairs, the search index) and the
daily counters that retention keeps when it deletes old events."""

from __future__ import annotations

from django.contrib import admin

from recommendations.admin.filters import SearchByUser
from recommendations.admin.readonly import DeletedWithUserAdmin, ReadOnlyAdmin
from recommendations.models import (
    DailyEventCount,
    ProductDocument,
    ProductPair,
    ProductPopularity,
    ServedRecommendation,
)


@admin.register(ServedRecommendation)
class ServedRecommendationAdmin(SearchByUser, DeletedWithUserAdmin):
    list_display = [
        "id",
        "kind",
        "source",
        "user",
        "session_short",
        "items",
        "model_version_id",
        "created_at",
    ]
    list_filter = ["kind", "source", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["user"]
    search_fields = ["id", "session_id"]
    # No `date_hierarchy`: its DISTINCT DATE_TRUNC read every row on each page; the date
    # filter picks a period through the index.
    ordering = ["-created_at"]

    @admin.display(description="session")
    def session_short(self, obj: ServedRecommendation) -> str:
        return obj.session_id[:8]

    @admin.display(description="items")
    def items(self, obj: ServedRecommendation) -> int:
        return len(obj.product_ids)


@admin.register(ProductPopularity)
class ProductPopularityAdmin(ReadOnlyAdmin):
    list_display = [
        "product_id",
        "trending_score",
        "popular_score",
        "buyers",
        "repeat_rate",
        "repurchase_days",
        "updated_at",
    ]
    search_fields = ["product_id", "store_id"]
    ordering = ["-trending_score"]


@admin.register(ProductPair)
class ProductPairAdmin(ReadOnlyAdmin):
    list_display = ["product_id", "other_id", "kind", "count", "score"]
    list_filter = ["kind"]
    search_fields = ["product_id", "other_id"]
    # The order of the lookup index (rec_pair_lookup): a page reads its rows off the index
    # instead of sorting every pair (57 ms at 389,000 pairs).
    ordering = ["kind", "product_id", "-score"]


@admin.register(ProductDocument)
class ProductDocumentAdmin(ReadOnlyAdmin):
    list_display = ["title", "product_id", "brand", "store_id", "price", "created_at", "updated_at"]
    search_fields = ["title", "product_id", "brand"]
    exclude = ["search_vector"]


@admin.register(DailyEventCount)
class DailyEventCountAdmin(ReadOnlyAdmin):
    list_display = ["day", "event_type", "product_id", "store_id", "count"]
    list_filter = ["event_type", ("day", admin.DateFieldListFilter)]
    search_fields = ["product_id", "store_id"]
    ordering = ["-day", "event_type"]
