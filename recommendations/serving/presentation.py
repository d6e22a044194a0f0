"""What a surface shows of a recommended product or store, read through the adapters.

The API's JSON and the template tags' cards are built from these dictionaries, so both
show the same title, price, store and link for any host model, with no extra queries
(the rules load products with their category and store relations).
"""

from __future__ import annotations

from typing import Any

from django.db import models

from recommendations.adapters import get_product_adapter, get_store_adapter


def url_of(obj: models.Model) -> str | None:
    get_url = getattr(obj, "get_absolute_url", None)
    return get_url() if callable(get_url) else None


def store_name(product: models.Model) -> str | None:
    """The product's store name, from the already selected relation."""
    adapter, store_adapter = get_product_adapter(), get_store_adapter()
    if not adapter.store_field or store_adapter is None:
        return None
    store = getattr(product, adapter.store_field, None)
    return str(getattr(store, store_adapter.name_field)) if store is not None else None


def product_card(obj: models.Model) -> dict[str, Any]:
    """Only what a card shows (a whole `ProductRecord` also builds the text the model reads)."""
    adapter = get_product_adapter()
    return {
        "id": adapter.key(obj.pk),
        "title": adapter.get_title(obj),
        "price": adapter.get_price(obj),
        "category": list(adapter.get_category_path(obj)),
        "store_id": adapter.get_store_id(obj),
        "store": store_name(obj),
        "url": url_of(obj),
    }


def store_card(obj: models.Model) -> dict[str, Any]:
    adapter = get_store_adapter()
    return {
        "id": adapter.key(obj.pk),
        "name": str(getattr(obj, adapter.name_field)),
        "url": url_of(obj),
    }
