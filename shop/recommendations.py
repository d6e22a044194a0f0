"""How the recommendations app reads this shop's catalogue."""

from django.db import models

from recommendations import adapters


class ProductAdapter(adapters.ProductAdapter):
    """Products: the default field names fit; the category path comes from the cached tree."""

    source_id_field = "sku"
    # Saved products change it, so serving keeps their cards until they change.
    updated_field = "updated_at"

    def index_queryset(self) -> models.QuerySet:
        return self.model._default_manager.all()

    def get_category_path(self, obj: models.Model) -> list[str]:
        return obj.category.names if obj.category_id else []


class StoreAdapter(adapters.StoreAdapter):
    """Stores: name, description and rating; specialities from their categories."""

    source_id_field = "external_id"

    def get_category_names(self, obj: models.Model) -> list[str]:
        return [c.name for c in obj.categories.all()]

    def index_queryset(self) -> models.QuerySet:
        return self.model._default_manager.prefetch_related("categories")
