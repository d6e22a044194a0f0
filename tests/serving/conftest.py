"""A small catalogue with known answers for the serving tests.

Three categories with three stores; vectors are 4-dimensional and point along one axis
per category (hair = x, face = y, nails = z), so nearest neighbours are known exactly.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from recommendations.models import Event, ModelStatus, ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.serving.catalog import index_products
from recommendations.vectors import queries
from shop.models import Category, Product, Store
from tests.state import fresh_serving_state

AXES = {"Hair": 0, "Face": 1, "Nails": 2}
TITLES = {
    "Hair": ["Argan shampoo", "Keratin conditioner", "Hair mask repair", "Dry shampoo spray"],
    "Face": ["Retinol night serum", "Vitamin C serum", "Hydrating face cream", "Clay face mask"],
    "Nails": ["Red nail polish", "Matte top coat", "Nail strengthener", "Cuticle oil"],
}


@dataclass
class Catalog:
    categories: dict[str, Category]
    stores: dict[str, Store]
    products: dict[str, Product]
    users: dict[str, object] = field(default_factory=dict)

    def id(self, title: str) -> str:
        return str(self.products[title].pk)

    def ids(self, *titles: str) -> list[str]:
        return [self.id(t) for t in titles]

    def title(self, product_id: str) -> str:
        return next(t for t, p in self.products.items() if str(p.pk) == product_id)

    def titles(self, product_ids) -> list[str]:
        return [self.title(str(pid)) for pid in product_ids]


@pytest.fixture(autouse=True)
def _fresh_state():
    yield from fresh_serving_state()


@pytest.fixture
def catalog(db) -> Catalog:
    now = timezone.now()
    root = Category.objects.create(name="Beauty", slug="beauty")
    categories = {name: Category.objects.create(name=name, slug=name.lower(), parent=root) for name in AXES}
    stores = {
        name: Store.objects.create(
            name=f"{name} Store", slug=f"{name.lower()}-store", description=f"All things {name}"
        )
        for name in AXES
    }
    products = {}
    for name, titles in TITLES.items():
        for i, title in enumerate(titles):
            product = Product.objects.create(
                title=title,
                slug=title.lower().replace(" ", "-"),
                description=f"{title} for your {name.lower()} routine",
                category=categories[name],
                store=stores[name],
                brand=f"{name}Co",
                price=10 + i,
                stock=5,
            )
            # Newest last: the last title of each category arrived most recently.
            Product.objects.filter(pk=product.pk).update(created_at=now - dt.timedelta(days=30 - i))
            products[title] = product
    User = get_user_model()
    users = {name: User.objects.create_user(name, password="pw") for name in ("alice", "bob")}
    # A superuser: what staff need of each permission is `tests/security/test_access.py`'s.
    users["staff"] = User.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)
    index_products()
    return Catalog(categories, stores, products, users)


def vector_of(catalog: Catalog, title: str) -> list[float]:
    """Along its category's axis, with a small per-product tilt so neighbours are ordered."""
    category = next(name for name, titles in TITLES.items() if title in titles)
    position = TITLES[category].index(title)
    v = np.zeros(4)
    v[AXES[category]] = 1.0
    v[3] = 0.1 * position
    return v.tolist()


@pytest.fixture
def model(catalog: Catalog) -> ModelVersion:
    """An active model: product, store and user vectors written directly (alice likes face care)."""
    version = ModelVersion.objects.create(algorithm="two_tower", status=ModelStatus.ACTIVE, dimensions=4)
    ProductVector.objects.bulk_create(
        ProductVector(model_version=version, product_id=str(p.pk), embedding=vector_of(catalog, title))
        for title, p in catalog.products.items()
    )
    StoreVector.objects.bulk_create(
        StoreVector(model_version=version, store_id=str(s.pk), embedding=np.eye(4)[AXES[name]].tolist())
        for name, s in catalog.stores.items()
    )
    UserVector.objects.create(model_version=version, user=catalog.users["alice"], embedding=[0, 1, 0, 0])
    queries.clear_cache()
    return version


def add_event(
    catalog: Catalog,
    event_type: str,
    title: str,
    *,
    user: str | None = None,
    session: str = "",
    ago: dt.timedelta = dt.timedelta(minutes=1),
    value: float | None = None,
) -> Event:
    return Event.objects.create(
        event_type=event_type,
        user=catalog.users[user] if user else None,
        session_id=session,
        product_id=catalog.id(title),
        timestamp=timezone.now() - ago,
        value=value,
    )


def buy_together(catalog: Catalog, first: str, second: str, *, basket: str) -> None:
    """`first` and `second` bought by two shoppers (sessions `basket` and `basket`-2): the
    fewest a pair takes (PAIRS_MIN_SHOPPERS)."""
    for session in (basket, f"{basket}-2"):
        add_event(catalog, "purchase", first, session=session)
        add_event(catalog, "purchase", second, session=session)


def render(source: str, user=None, **context) -> str:
    """`source` rendered with the recommendation tags for a request of `user` (anonymous by default)."""
    request = RequestFactory().get("/")
    request.user = user or AnonymousUser()
    request.session = {}
    return Template("{% load recommendations_tags %}" + source).render(
        Context({"request": request, **context})
    )


def product_ids(html: str) -> list[str]:
    return re.findall(r'data-product-id="([^"]+)"', html)


def blocks(html: str) -> list[str]:
    """The recommendation ids of the rendered blocks."""
    return re.findall(r'data-rec-id="([0-9a-f]+)"', html)
