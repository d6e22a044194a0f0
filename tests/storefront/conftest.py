"""A small shop for the storefront and admin tests: two stores, a category tree, shoppers."""

import datetime as dt
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from recommendations.models import Event
from recommendations.serving.catalog import index_products
from recommendations.serving.statistics import refresh_statistics
from recommendations.vectors import queries
from shop.models import Category, Product, Store


@pytest.fixture(autouse=True)
def fresh_caches():
    # Serving caches candidate lists, the API throttles count in the cache, and each process
    # remembers the active model version for a few seconds.
    cache.clear()
    queries.clear_cache()
    yield
    queries.clear_cache()


@pytest.fixture
def catalogue(db):
    """Eight products in two leaf categories and two stores; the last one is out of stock."""
    kitchen = Category.objects.create(name="Kitchen")
    mugs = Category.objects.create(name="Mugs", parent=kitchen)
    knives = Category.objects.create(name="Knives", parent=kitchen)
    clay = Store.objects.create(name="Clay & Co", slug="clay-co", rating=Decimal("4.6"))
    steel = Store.objects.create(name="Steel Works", slug="steel-works", rating=Decimal("4.1"))
    products = []
    for i in range(8):
        mug = i % 2 == 0
        products.append(
            Product.objects.create(
                title=f"{'Stoneware mug' if mug else 'Chef knife'} {i}",
                slug=f"product-{i}",
                description="Hand made." if mug else "Forged steel.",
                category=mugs if mug else knives,
                store=clay if mug else steel,
                price=Decimal(12 + i),
                stock=0 if i == 7 else 5,
            )
        )
    return products


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user("shopper", email="shopper@example.com", password="pw")


@pytest.fixture
def admin_client(client, django_user_model):
    admin = django_user_model.objects.create_superuser("boss", "boss@example.com", "pw")
    client.force_login(admin)
    return client


@pytest.fixture
def indexed(catalogue):
    index_products()
    return catalogue


@pytest.fixture
def history(indexed, django_user_model):
    """Shoppers viewed mug 0 with knife 3, and bought mug 2 most."""
    for n in range(4):
        user = django_user_model.objects.create_user(f"past{n}")
        event("view", product=indexed[0], user=user, session=f"past{n}", days_ago=1)
        event("view", product=indexed[3], user=user, session=f"past{n}", days_ago=1)
        event("purchase", product=indexed[2], user=user, value=1, days_ago=1)
        event("rating", product=indexed[2], user=user, value=4 + n % 2, days_ago=1)
    refresh_statistics()
    return indexed


def event(event_type, *, product=None, user=None, session="s1", days_ago=0.0, **fields):
    """Store one event directly (the analytics read rows, however they arrived)."""
    return Event.objects.create(
        event_type=event_type,
        product_id=str(product.pk) if product is not None else "",
        user=user,
        session_id=session,
        timestamp=timezone.now() - dt.timedelta(days=days_ago),
        **fields,
    )


def plan_of(sql: str, params: tuple = (), *, sorts: bool = True) -> str:
    """PostgreSQL's plan for a statement as run, with sequential scans priced out: what it
    would do with a table too big to read whole, whatever the size of the test's. With
    `sorts=False` sorting is priced out too: a plan that still sorts has no index to read
    the order from (a small table's joins are otherwise cheaper sorted)."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        if not sorts:
            cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


def page_urls(catalogue: list[Product]) -> list[str]:
    """The storefront pages every visitor may open, with the query strings that change them."""
    mug = catalogue[0]
    return [
        reverse("shop:home"),
        reverse("shop:category", args=["kitchen"]),
        reverse("shop:category", args=["mugs"]) + "?sort=price",
        reverse("shop:category", args=["mugs"]) + "?sort=-price&page=9",
        reverse("shop:category", args=["knives"]) + "?sort=newest",
        reverse("shop:category", args=["knives"]) + "?sort=bogus",
        mug.get_absolute_url(),
        reverse("shop:store", args=[mug.store.slug]),
        reverse("shop:search") + "?q=mug",
        reverse("shop:search") + "?q=",
        reverse("shop:search") + "?q=zzzzqqqq",
        reverse("shop:cart"),
        reverse("shop:login"),
    ]
