"""Embeddings and precomputed lists per model version: browse them to check what a version stored."""

from __future__ import annotations

from django.contrib import admin

from recommendations.admin.filters import SearchByUser
from recommendations.admin.readonly import DeletedWithUserAdmin, ReadOnlyAdmin
from recommendations.models import PrecomputedList, ProductVector, StoreVector, UserVector

PREVIEW_VALUES = 8


class VectorAdmin(ReadOnlyAdmin):
    list_filter = ["model_version"]
    list_select_related = ["model_version"]
    readonly_fields = ["model_version", "dimensions", "embedding_preview", "bias", "updated_at"]
    exclude = ["embedding"]

    @admin.display(description="dimensions")
    def dimensions(self, obj: ProductVector | StoreVector | UserVector) -> int:
        return len(obj.embedding)

    @admin.display(description=f"embedding (first {PREVIEW_VALUES} values)")
    def embedding_preview(self, obj: ProductVector | StoreVector | UserVector) -> str:
        values = ", ".join(f"{v:.4f}" for v in list(obj.embedding)[:PREVIEW_VALUES])
        return f"[{values}, …]"


@admin.register(ProductVector)
class ProductVectorAdmin(VectorAdmin):
    list_display = ["product_id", "model_version", "bias", "updated_at"]
    search_fields = ["product_id"]


@admin.register(StoreVector)
class StoreVectorAdmin(VectorAdmin):
    list_display = ["store_id", "model_version", "bias", "updated_at"]
    search_fields = ["store_id"]


@admin.register(UserVector)
class UserVectorAdmin(SearchByUser, DeletedWithUserAdmin, VectorAdmin):
    list_display = ["user", "model_version", "updated_at"]
    list_select_related = ["model_version", "user"]
    readonly_fields = ["user", *VectorAdmin.readonly_fields]


@admin.register(PrecomputedList)
class PrecomputedListAdmin(ReadOnlyAdmin):
    """A product's similar products or a user's best products, as serving reads them."""

    list_display = ["key", "kind", "model_version", "top"]
    list_filter = ["kind", "model_version"]
    list_select_related = ["model_version"]
    search_fields = ["key"]
    readonly_fields = ["model_version", "kind", "key", "ranked"]
    exclude = ["product_ids", "scores"]

    @admin.display(description=f"first {PREVIEW_VALUES} products")
    def top(self, obj: PrecomputedList) -> str:
        return ", ".join(obj.product_ids[:PREVIEW_VALUES])

    @admin.display(description="products, best first (score)")
    def ranked(self, obj: PrecomputedList) -> str:
        return ", ".join(
            f"{pid} ({score:.4f})" for pid, score in zip(obj.product_ids, obj.scores, strict=True)
        )
