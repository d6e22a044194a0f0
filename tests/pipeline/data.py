"""Small generated shops with a planted structure: each shopper sticks to one store.

A model that learns anything ranks a shopper's own store's products above the others,
which the pipeline tests check end to end.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.utils import timezone

from recommendations.models import Event
from shop.models import Category, Product, Store
from tests.pipeline.tiny import TINY_TRAINING

WORDS = {
    0: ["lipstick", "gloss", "matte", "rouge"],
    1: ["shampoo", "conditioner", "hair", "keratin"],
    2: ["serum", "retinol", "night", "cream"],
    3: ["perfume", "musk", "floral", "eau"],
    4: ["nail", "polish", "lacquer", "topcoat"],
}


@dataclass
class Shop:
    stores: list[Store]
    products: list[Product]
    users: list
    taste: dict[int, int]  # user pk -> store index

    def store_product_ids(self, store_index: int) -> set[str]:
        store = self.stores[store_index]
        return {str(p.pk) for p in self.products if p.store_id == store.pk}


def make_shop(
    n_stores: int = 5,
    products_per_store: int = 40,
    n_users: int = 60,
    events_per_user: int = 14,
    seed: int = 3,
) -> Shop:
    rng = random.Random(seed)
    now = timezone.now()
    stores, products = [], []
    for s in range(n_stores):
        category = Category.objects.create(name=f"Category {s}", slug=f"category-{s}-{seed}")
        store = Store.objects.create(name=f"Store {s}", slug=f"store-{s}-{seed}", rating=4)
        stores.append(store)
        words = WORDS[s % len(WORDS)]
        products += [
            Product(
                title=f"{rng.choice(words)} {rng.choice(words)} {i}",
                slug=f"p-{s}-{i}-{seed}",
                description=" ".join(rng.choices(words, k=6)),
                category=category,
                store=store,
                brand=f"Brand {s}",
                price=5 + 3 * s + i % 7,
                stock=10,
            )
            for i in range(products_per_store)
        ]
    products = Product.objects.bulk_create(products)
    by_store = [[p for p in products if p.store_id == store.pk] for store in stores]
    User = get_user_model()
    users = User.objects.bulk_create([User(username=f"shopper{u}-{seed}") for u in range(n_users)])
    taste, events = {}, []
    for u, user in enumerate(users):
        store_index = u % n_stores
        taste[user.pk] = store_index
        favourites = rng.sample(by_store[store_index], min(12, products_per_store))
        for e in range(events_per_user):
            product = rng.choice(favourites) if rng.random() < 0.9 else rng.choice(products)
            kind = "purchase" if e % 5 == 4 else "view"
            events.append(
                Event(
                    event_type=kind,
                    user=user,
                    session_id=f"sess-{u}",
                    product_id=str(product.pk),
                    timestamp=now - dt.timedelta(days=20) + dt.timedelta(hours=e * 7 + u),
                    revenue=product.price if kind == "purchase" else None,
                )
            )
    Event.objects.bulk_create(events)
    return Shop(stores, products, users, taste)


def tiny_settings(**extra) -> dict:
    """RECOMMENDATIONS of the test settings with a tiny training configuration."""
    from django.conf import settings

    return {**settings.RECOMMENDATIONS, "TRAINING": TINY_TRAINING, "DEVICE": "cpu", **extra}


def copy_product(template: Product, slug: str) -> Product:
    """A new product with the content of `template` (same store, category, words, brand)."""
    return Product.objects.create(
        title=template.title,
        slug=slug,
        description=template.description,
        category=template.category,
        store=template.store,
        brand=template.brand,
        price=template.price,
        stock=2,
    )
