"""The search index follows the catalogue: a saved product is searchable once its save commits."""

import logging
from functools import partial

import pytest
from django.db import connection, transaction
from rest_framework.test import APIClient

from recommendations import signal_processors
from recommendations.models import ProductDocument, ProductPopularity
from recommendations.serving import products, search
from recommendations.serving.catalog import SearchIndexProcessor
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Audience, Options
from shop.models import Product
from tests.serving.conftest import TITLES, add_event
from tests.state import clear_all_caches

pytestmark = pytest.mark.django_db


def document(product) -> ProductDocument | None:
    return ProductDocument.objects.filter(product_id=str(product.pk)).first()


def found(query: str) -> list[str]:
    return search.search(query, Audience(), Options()).ids


def test_a_saved_product_is_searchable_under_its_new_title(catalog, django_capture_on_commit_callbacks):
    product = catalog.products["Argan shampoo"]
    assert document(product).title == "Argan shampoo"
    with django_capture_on_commit_callbacks(execute=True):
        product.title = "Lavender hair oil"
        product.save()
    assert document(product).title == "Lavender hair oil"
    assert found("lavender") == [str(product.pk)]


def test_new_and_deleted_products(catalog, django_capture_on_commit_callbacks):
    template = catalog.products["Red nail polish"]
    with django_capture_on_commit_callbacks(execute=True):
        added = Product.objects.create(
            title="Glitter nail polish",
            slug="glitter-nail-polish",
            category=template.category,
            store=template.store,
            price=9,
            stock=3,
        )
    assert document(added).categories == ["Beauty", "Nails"]
    assert found("glitter") == [str(added.pk)]
    gone = catalog.products["Cuticle oil"]
    with django_capture_on_commit_callbacks(execute=True):
        gone.delete()
    assert not ProductDocument.objects.filter(title="Cuticle oil").exists()


def test_a_rolled_back_save_changes_nothing(catalog, django_capture_on_commit_callbacks):
    product = catalog.products["Clay face mask"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError), transaction.atomic():
            product.title = "Charcoal face mask"
            product.save()
            raise RuntimeError("the order failed")
    confirmations = [c for c in callbacks if isinstance(c, partial)]  # the rollback dropped them
    assert confirmations == [] and document(product).title == "Clay face mask"


def test_a_failing_index_never_fails_the_save(catalog, django_capture_on_commit_callbacks, caplog):
    product = catalog.products["Matte top coat"]
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {ProductDocument._meta.db_table} RENAME TO broken_documents")
    with caplog.at_level(logging.ERROR, logger="recommendations"):
        with django_capture_on_commit_callbacks(execute=True):
            product.title = "Glossy top coat"
            product.save()
    assert Product.objects.get(pk=product.pk).title == "Glossy top coat"
    assert "Could not update the search documents" in caplog.text and "refresh_serving" in caplog.text


def test_installing_the_processor_again_replaces_it(catalog, django_capture_on_commit_callbacks):
    """`ready()` may run twice (tests, reloads): a save must still be indexed once."""
    installed = signal_processors.install("search index", SearchIndexProcessor)
    product = catalog.products["Argan shampoo"]
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        product.save()
    batches = [c.func.__self__ for c in callbacks if isinstance(c, partial)]  # a save's confirmations
    assert [b.processor for b in batches if isinstance(b.processor, SearchIndexProcessor)] == [installed]


def test_a_renamed_store_is_found_under_its_new_name(catalog, django_capture_on_commit_callbacks):
    store = catalog.stores["Nails"]
    store.name = "Northwind Lacquer"
    with django_capture_on_commit_callbacks(execute=True):
        store.save()
    assert set(catalog.titles(found("northwind"))) == set(TITLES["Nails"])
    written = dict(ProductDocument.objects.values_list("product_id", "updated_at"))
    store.description = "Lacquers since 1990"  # not a name: no document changes
    with django_capture_on_commit_callbacks(execute=True):
        store.save()
    assert dict(ProductDocument.objects.values_list("product_id", "updated_at")) == written


def test_a_renamed_category_trends_under_its_new_name_at_once(catalog, django_capture_on_commit_callbacks):
    """Trending in a category reads the paths kept with each product's popularity: they follow
    a rename on commit, not at the next hourly refresh (until then the renamed category's
    shelf held only its newest products)."""
    for _ in range(3):
        add_event(catalog, "purchase", "Cuticle oil", session="fan")
    refresh_statistics()
    nails = catalog.categories["Nails"]
    nails.name = "Manicure"
    with django_capture_on_commit_callbacks(execute=True):
        nails.save()
    clear_all_caches()
    result = products.trending(Audience(), Options(category="Manicure", limit=2, explain=True))
    assert catalog.title(result.recommendations[0].product_id) == "Cuticle oil"
    assert result.recommendations[0].source != "new"
    assert ProductPopularity.objects.get(product_id=catalog.id("Cuticle oil")).categories[-1] == "Manicure"


def test_a_renamed_parent_category_is_found_under_its_new_name(catalog, django_capture_on_commit_callbacks):
    """The products of the categories under "Beauty" are found by its new name in one search
    through the API, not by the old one; saving it again unchanged writes no document."""
    beauty = catalog.categories["Hair"].parent
    beauty.name = "Cosmetics"
    with django_capture_on_commit_callbacks(execute=True):
        beauty.save()
    api = APIClient()
    hits = api.get("/api/search/", {"q": "cosmetics", "limit": 20}).json()["results"]
    assert {hit["title"] for hit in hits} == {title for titles in TITLES.values() for title in titles}
    assert api.get("/api/search/", {"q": "beauty"}).json()["results"] == []
    assert document(catalog.products["Cuticle oil"]).placement == "Cosmetics Nails Nails Store"
    written = dict(ProductDocument.objects.values_list("product_id", "updated_at"))
    with django_capture_on_commit_callbacks(execute=True):
        beauty.save()
    assert dict(ProductDocument.objects.values_list("product_id", "updated_at")) == written
