"""Fixtures of the security tests: a small catalogue, shoppers, staff and API keys."""

import pytest
from django.core.cache import cache

from recommendations.models import ApiKey
from shop.models import Category, Product, Store


@pytest.fixture(autouse=True)
def _fresh_throttle_counters():
    cache.clear()


@pytest.fixture
def products(db):
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    return [
        Product.objects.create(
            title=f"Mug {i}", slug=f"mug-{i}", category=category, store=store, price=5, stock=3
        )
        for i in range(3)
    ]


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw")


@pytest.fixture
def bob(django_user_model):
    return django_user_model.objects.create_user("bob", password="pw")


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_user("staff", password="pw", is_staff=True, is_superuser=True)


@pytest.fixture
def make_key(db):
    """`make_key(*scopes)` -> the raw key (shown once, never stored)."""

    def make(*scopes):
        return ApiKey.objects.create_key("test", list(scopes))[1]

    return make
