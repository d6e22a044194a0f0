"""Product cards kept between requests: reused while the product is unchanged, never for stock."""

import re

import pytest
from django.db import connection
from django.template import Context, Template
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.test import APIClient

from recommendations.serving import presentation
from recommendations.serving.statistics import refresh_statistics
from shop.models import Product
from shop.recommendations import ProductAdapter as ShopProductAdapter
from tests.serving.conftest import add_event

pytestmark = pytest.mark.django_db

TRENDING = "/api/recommendations/trending/"
# Only the read of the shown products' cards selects their store's name (the rules' own read does not).
SHOWN_READ = '"shop_store"."name"'


@pytest.fixture
def trending(catalog):
    """Three trending products: Argan shampoo first."""
    for title, views in (("Argan shampoo", 3), ("Vitamin C serum", 2), ("Red nail polish", 1)):
        for _ in range(views):
            add_event(catalog, "view", title, user="bob")
    refresh_statistics()
    return catalog


def answer(path: str = TRENDING) -> tuple[dict, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        response = APIClient().get(path, {"limit": 3})
    assert response.status_code == 200, response.content
    return response.json(), [q["sql"] for q in queries.captured_queries]


def titles(body: dict) -> list[str]:
    return [item["title"] for item in body["results"]]


def test_a_repeated_list_reads_no_product_rows_and_answers_the_same(trending):
    first, first_sql = answer()
    second, second_sql = answer()
    assert titles(first) == ["Argan shampoo", "Vitamin C serum", "Red nail polish"]
    assert any(SHOWN_READ in sql for sql in first_sql)
    assert not any(SHOWN_READ in sql for sql in second_sql)
    strip = lambda body: [{k: v for k, v in i.items() if k != "recommendation_id"} for i in body["results"]]  # noqa: E731
    assert strip(second) == strip(first)
    assert first["recommendation_id"] != second["recommendation_id"]


def test_a_changed_product_gets_a_new_card(trending):
    answer()
    argan = trending.products["Argan shampoo"]
    argan.title = "Argan shampoo 2.0"
    argan.price = 99
    argan.save()  # auto_now moves updated_at
    body, sql = answer()
    assert titles(body)[0] == "Argan shampoo 2.0" and body["results"][0]["price"] == 99.0
    assert any(SHOWN_READ in s for s in sql)


def test_an_update_that_keeps_updated_at_shows_after_the_cards_expire(trending, settings, monkeypatch):
    answer()
    argan = trending.id("Argan shampoo")
    Product.objects.filter(pk=argan).update(title="Renamed quietly")
    assert titles(answer()[0])[0] == "Argan shampoo"  # the documented lag of QuerySet.update()
    later = presentation.time.monotonic() + settings.RECOMMENDATIONS.get("CARD_CACHE_SECONDS", 60) + 1
    monkeypatch.setattr(presentation.time, "monotonic", lambda: later)
    assert titles(answer()[0])[0] == "Renamed quietly"
    Product.objects.filter(pk=argan).update(title="Renamed and stamped", updated_at=timezone.now())
    assert titles(answer()[0])[0] == "Renamed and stamped"


def test_stock_and_activity_never_come_from_a_card(trending):
    answer()
    Product.objects.filter(pk=trending.id("Argan shampoo")).update(stock=0)
    Product.objects.filter(pk=trending.id("Red nail polish")).update(is_active=False)
    shown = titles(answer()[0])
    assert shown[0] == "Vitamin C serum"
    assert "Argan shampoo" not in shown and "Red nail polish" not in shown


def test_cards_are_off_without_seconds_and_bounded_in_number(trending, settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "CARD_CACHE_SIZE": 2}
    answer()
    assert len(presentation.product_cards) == 2
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "CARD_CACHE_SECONDS": 0}
    answer()
    assert any(SHOWN_READ in sql for sql in answer()[1])
    assert len(presentation.product_cards) == 0


def test_template_blocks_render_kept_cards_as_they_render_new_ones(trending, rf):
    block = Template("{% load recommendations_tags %}{% trending_products limit=3 %}")

    def render() -> str:
        html = block.render(Context({"request": rf.get("/")}))
        return re.sub(r'(value|data-rec-id)="\w+"|rec=\w+', "", html)

    fresh = render()
    assert len(presentation.product_cards) == 3
    assert render() == fresh and "Argan shampoo" in fresh and "Face Store" in fresh


def test_cards_from_values_show_what_cards_from_instances_show(catalog):
    """The shop's adapter names card_values: its cards must not differ from the getters'."""
    from recommendations.adapters import get_product_adapter

    adapter = get_product_adapter()
    assert adapter.card_values
    rows = Product.objects.order_by("pk").values_list("pk", *adapter.card_values)
    instances = Product.objects.order_by("pk").select_related("category", "store")
    from_values = [presentation.card_from_row(row) for row in rows]
    assert from_values == [presentation.product_card(product) for product in instances]
    assert len(from_values) == len(catalog.products) and from_values[0]["url"].startswith("/")


def test_shown_cards_are_one_read_of_values_not_instances(trending):
    body, sql = answer()
    (card_read,) = [s for s in sql if SHOWN_READ in s]
    # The named values only: not the description, stock or the store's other columns.
    assert '"shop_product"."description"' not in card_read and '"shop_store"."rating"' not in card_read
    assert body["results"][0]["title"] == "Argan shampoo" and body["results"][0]["category"] == [
        "Beauty",
        "Hair",
    ]


class InstanceCards(ShopProductAdapter):
    """The shop's adapter as a host that names no card values: cards come from instances."""

    card_values = ()


def test_an_adapter_without_card_values_shows_the_same_cards_from_instances(trending, settings):
    from_values, _ = answer()
    presentation.product_cards.clear()
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PRODUCT_ADAPTER": f"{__name__}.InstanceCards"}
    from_instances, sql = answer()
    assert any('"shop_product"."description"' in s for s in sql)  # whole instances were read
    strip = lambda body: [{k: v for k, v in i.items() if k != "recommendation_id"} for i in body["results"]]  # noqa: E731
    assert strip(from_instances) == strip(from_values)
