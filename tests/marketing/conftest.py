"""A small shop with planted behaviour, so each targeting rule has a known right answer.

Three categories, each with its own store: Tea, Coffee and Garden. Shoppers:

- tea_lover, coffee_lover, gardener: viewed and bought in one category each (recently);
- loyal: bought on five different days, big baskets, last week -> loyal_high_spender;
- lapsing: bought on three days, the last one 200 days ago -> lapsing;
- newbie: one small purchase yesterday -> new_customer;
- bystander: never did anything.

Stock: each category's last product ("... 4") has 500 units and never sold (a slow seller);
the others have 5 units. Vectors (when a test asks for `model`) are 4-dimensional, one
axis per category, and the category lovers' user vectors point along their category.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from recommendations.models import Event, ModelStatus, ModelVersion, ProductVector, UserVector
from recommendations.serving.catalog import index_products
from recommendations.vectors import queries
from shop.models import Category, Product, Store
from tests.state import fresh_serving_state

AXES = {"Tea": 0, "Coffee": 1, "Garden": 2}
PRODUCTS_PER_CATEGORY = 4
SLOW_SELLER_STOCK = 500


@dataclass
class Shop:
    now: dt.datetime
    categories: dict[str, Category]
    stores: dict[str, Store]
    products: dict[str, list[Product]]
    users: dict[str, object] = field(default_factory=dict)

    def ids(self, category: str) -> list[str]:
        return [str(p.pk) for p in self.products[category]]

    def slow_seller(self, category: str) -> str:
        return str(self.products[category][-1].pk)

    def user_ids(self, *names: str) -> set:
        return {self.users[n].pk for n in names}


def add_event(event_type: str, *, user=None, session: str = "", product=None, when=None, **fields) -> Event:
    """One event, written directly (the ingestion path is the events package's business)."""
    return Event.objects.create(
        event_type=event_type,
        user=user,
        session_id=session,
        product_id=str(product.pk) if product is not None else fields.pop("product_id", ""),
        store_id=str(product.store_id) if product is not None else fields.pop("store_id", ""),
        timestamp=when or timezone.now(),
        **fields,
    )


def buy(user, product, when, amount: str) -> Event:
    return add_event("purchase", user=user, product=product, when=when, value=1, revenue=Decimal(amount))


@pytest.fixture(autouse=True)
def _fresh_state():
    yield from fresh_serving_state()


@pytest.fixture
def shop(db) -> Shop:
    now = timezone.now()
    root = Category.objects.create(name="Shop", slug="shop-root")
    categories, stores, products = {}, {}, {}
    for name in AXES:
        categories[name] = Category.objects.create(name=name, slug=name.lower(), parent=root)
        stores[name] = Store.objects.create(name=f"{name} House", slug=f"{name.lower()}-house")
        products[name] = [
            Product.objects.create(
                title=f"{name} {i}",
                slug=f"{name.lower()}-{i}",
                category=categories[name],
                store=stores[name],
                price=10 + i,
                stock=SLOW_SELLER_STOCK if i == PRODUCTS_PER_CATEGORY else 5,
            )
            for i in range(1, PRODUCTS_PER_CATEGORY + 1)
        ]
    User = get_user_model()
    names = ["tea_lover", "coffee_lover", "gardener", "loyal", "lapsing", "newbie", "bystander"]
    users = {n: User.objects.create_user(n, email=f"{n}@example.com", password="pw") for n in names}
    shop = Shop(now, categories, stores, products, users)

    day = dt.timedelta(days=1)
    for name, category in (("tea_lover", "Tea"), ("coffee_lover", "Coffee"), ("gardener", "Garden")):
        for product in products[category][:3]:
            add_event("view", user=users[name], product=product, when=now - 2 * day)
        buy(users[name], products[category][0], now - day, "10.00")
    for d in range(5):
        buy(users["loyal"], products["Coffee"][1], now - (3 + d) * day, "120.00")
    for d in range(3):
        buy(users["lapsing"], products["Garden"][1], now - (200 + d) * day, "30.00")
    buy(users["newbie"], products["Tea"][1], now - day, "11.00")
    index_products()  # serving's catalogue index, which resolves category names
    return shop


@pytest.fixture
def model(shop: Shop) -> ModelVersion:
    """An active model whose vectors put each category on its own axis."""
    version = ModelVersion.objects.create(algorithm="two_tower", status=ModelStatus.ACTIVE, dimensions=4)
    vectors = []
    for category, products in shop.products.items():
        for i, product in enumerate(products):
            v = np.zeros(4)
            v[AXES[category]] = 1.0
            v[3] = 0.05 * i
            vectors.append(
                ProductVector(model_version=version, product_id=str(product.pk), embedding=v.tolist())
            )
    ProductVector.objects.bulk_create(vectors)
    for name, category in (("tea_lover", "Tea"), ("coffee_lover", "Coffee"), ("gardener", "Garden")):
        v = np.full(4, 0.1)
        v[AXES[category]] = 1.0
        UserVector.objects.create(model_version=version, user=shop.users[name], embedding=v.tolist())
    queries.clear_cache()
    return version
