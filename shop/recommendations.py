"""How the recommendations app reads this shop's catalogue."""

from typing import Any

from django.db import models

from recommendations import adapters
from shop.models import Category, slug_url


class ProductAdapter(adapters.ProductAdapter):
    """Products: the default field names fit; the category path comes from the cached tree."""

    source_id_field = "sku"
    # A renamed or moved category rewrites the search documents of the products under it.
    category_parent_field = "parent"
    # Saved products change it, so serving keeps their cards until they change.
    updated_field = "updated_at"

    # Cards are built from these values: no Product, Category and Store instances per card.
    card_values = ("title", "price", "slug", "category__path", "store_id", "store__name")

    def get_category_path(self, obj: models.Model) -> list[str]:
        return obj.category.names if obj.category_id else []

    def card_from_values(self, values: dict[str, Any]) -> dict[str, Any]:
        path, store_id = values["category__path"], values["store_id"]
        return {
            "title": str(values["title"] or ""),
            "price": adapters.price_of(values["price"]),
            "category": Category.names_of(path) if path is not None else [],
            "store_id": self.key(store_id) if store_id is not None else None,
            "store": str(values["store__name"]) if store_id is not None else None,
            "url": slug_url("shop:product", values["slug"]),
        }


class StoreAdapter(adapters.StoreAdapter):
    """Stores: name, description and rating; specialities from their categories."""

    source_id_field = "external_id"

    def get_category_names(self, obj: models.Model) -> list[str]:
        return [c.name for c in obj.categories.all()]

    def index_queryset(self) -> models.QuerySet:
        return self.model._default_manager.prefetch_related("categories")
