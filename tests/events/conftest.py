"""Fixtures of the event-layer tests: a tiny catalogue, shoppers and API keys."""

import pytest
from django.core.cache import cache

from recommendations.models import ApiKey
from shop.models import Category, Product, Store


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()


@pytest.fixture
def catalogue(db):
    """Three active products (two stores) and one inactive product."""
    root = Category.objects.create(name="Kitchen")
    mugs = Category.objects.create(name="Mugs", parent=root)
    stores = [
        Store.objects.create(name="Clay & Co", slug="clay-co"),
        Store.objects.create(name="Steel Works", slug="steel-works"),
    ]
    products = [
        Product.objects.create(
            title=f"Product {i}",
            slug=f"product-{i}",
            category=mugs,
            store=stores[i % 2],
            price=10 + i,
            stock=5,
        )
        for i in range(4)
    ]
    products[3].is_active = False
    products[3].save()
    return products


@pytest.fixture
def api_key(db):
    _, raw = ApiKey.objects.create_key("test server", ["events:write"])
    return raw


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user("shopper", password="pw")


CSRF_SECRET = "abcdefghijklmnopqrstuvwxyzABCDEF"  # any 32 letters: the cookie the browser holds


@pytest.fixture
def browser():
    """A browser with a CSRF cookie, as a storefront page using {{ csrf_token }} leaves it."""
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = CSRF_SECRET
    return client
