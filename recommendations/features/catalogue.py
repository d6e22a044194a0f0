"""The catalogue as the learning core sees it, read through the host's adapters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recommendations.adapters import ProductRecord, StoreRecord, get_product_adapter, get_store_adapter
from recommendations.features.keys import KeyIndex
from recommendations.learning.features import ItemContent


@dataclass
class Catalogue:
    """Every recommendable product in a fixed order (item index = position), and the stores.

    Inactive products keep their place in the item order (a model trained while they were
    active knows them), but they get no vector (`active` is False) and are never recommended.
    """

    products: list[ProductRecord]
    items: KeyIndex
    stores: list[StoreRecord]

    @property
    def active(self) -> np.ndarray:
        return np.array([p.is_active for p in self.products], dtype=bool)

    def contents(self) -> list[ItemContent]:
        return [item_content(p) for p in self.products]


def item_content(record: ProductRecord) -> ItemContent:
    """What the item tower reads about a product: text, category path, brand, store, price, age."""
    return ItemContent(
        title=record.title,
        description=record.text.removeprefix(record.title).strip(),
        category_path=record.category_path,
        brand=record.brand or None,
        store=record.store_id,
        price=record.price,
        created_at=record.created_at.timestamp() if record.created_at else None,
    )


def load_catalogue() -> Catalogue:
    """Read the host's products (and stores, when configured) through the adapters."""
    products = list(get_product_adapter().records())
    store_adapter = get_store_adapter()
    stores = list(store_adapter.records()) if store_adapter is not None else []
    return Catalogue(products, KeyIndex(p.id for p in products), stores)
