"""Template tags: rendered blocks, the page-wide no-repeat rule, `as` forms and failures."""

import logging
import re

import pytest
from django.db import connection
from django.template import TemplateSyntaxError
from django.template.loader import render_to_string

from recommendations.models import ProductPopularity
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Recommendation
from tests.serving.conftest import TITLES, add_event, blocks, buy_together, product_ids, render
from tests.state import clear_all_caches

pytestmark = pytest.mark.django_db


@pytest.fixture
def busy_shop(catalog):
    """Everything has been viewed and bought a little, so every block has plenty to show."""
    for i, title in enumerate(catalog.products):
        for _ in range(1 + i % 3):
            add_event(catalog, "view", title, session=f"s{i % 4}")
        for buyer in ("s", "t"):  # two baskets alike: pairs take two shoppers
            add_event(catalog, "purchase", title, session=f"{buyer}{i % 2}")
    refresh_statistics()
    return catalog


def test_blocks_of_one_page_never_repeat_a_product(busy_shop, model):
    catalog = busy_shop
    html = render(
        # Up to 11 of the catalogue's 12 products, so that every block has some left to show;
        # "similar" keeps to close matches, the face products "for you" has not shown.
        "{% recommended_products limit=3 %}"
        "{% similar_products product limit=3 %}"
        "{% bought_together product limit=3 %}"
        "{% trending_products limit=2 %}",
        user=catalog.users["alice"],
        product=catalog.products["Vitamin C serum"],
    )
    ids = product_ids(html)
    assert len(blocks(html)) == 4
    assert len(ids) >= 9
    assert len(ids) == len(set(ids)), "a product appeared in two blocks"


def test_the_same_blocks_without_the_shared_set_would_repeat(busy_shop, model):
    """The no-repeat test above is meaningful: rendered apart, the blocks overlap."""
    catalog = busy_shop
    product = catalog.products["Vitamin C serum"]
    ids = []
    for source in ("{% recommended_products limit=4 %}", "{% similar_products product limit=4 %}"):
        ids += product_ids(render(source, user=catalog.users["alice"], product=product))
    assert len(ids) != len(set(ids))


@pytest.fixture
def app_templates(settings):
    """The app's own block templates, not the demo shop's overrides."""
    settings.TEMPLATES = [{**settings.TEMPLATES[0], "DIRS": []}]


def test_cards_show_title_price_store_and_why(catalog, model, app_templates):
    html = render(
        '{% similar_products product limit=2 title="You may also like" %}',
        product=catalog.products["Argan shampoo"],
    )
    assert "You may also like" in html
    assert "Keratin conditioner" in html or "Dry shampoo spray" in html
    assert "Hair Store" in html and "Why?" in html and "Similar to Argan shampoo" in html
    assert re.search(r'class="rec-price">\d+\.00<', html)
    assert 'data-rec-impression data-rec-id="' in html


def test_a_product_or_store_without_an_address_is_named_not_linked_to_nowhere(app_templates):
    """A host's model without get_absolute_url: its card was a link to "#", which a keyboard
    reaches and a screen reader calls a link, and which leads nowhere."""
    recommendation = Recommendation(
        "7", score=1.0, source="trending", reason="", recommendation_id="ab", position=0
    )
    for template, card in (
        ("recommendations/_product_card.html", {"id": "7", "title": "Gadget", "url": None}),
        ("recommendations/stores.html", {"id": "7", "name": "Seller", "url": None}),
    ):
        item = {"object": None, "card": card, "recommendation": recommendation}
        html = render_to_string(template, {"item": item, "items": [item]})
        assert "<a " not in html and (card.get("title") or card.get("name")) in html, template
    card = {"id": "7", "title": "Gadget", "url": "/gadgets/7/"}
    html = render_to_string("recommendations/_product_card.html", {"item": {"card": card}})
    assert '<a class="rec-link" href="/gadgets/7/">' in html


def test_a_block_about_a_product_with_only_popular_products_is_headed_by_them(catalog, app_templates):
    """Nothing was bought or viewed with the conditioner and no title is like it: both blocks
    about it hold only the category's popular products, and their heading says so. A trending
    block keeps the host's title: popular products are what it is about."""
    add_event(catalog, "purchase", "Argan shampoo", session="someone")
    refresh_statistics()
    source = '{% bought_together product title="Frequently bought together" %}'
    html = render(source, product=catalog.products["Keratin conditioner"])
    assert '<h2 class="rec-title">Popular in Hair</h2>' in html
    html = render(
        '{% similar_products product title="Similar products" %}',
        product=catalog.products["Keratin conditioner"],
    )
    assert '<h2 class="rec-title">Popular in Hair</h2>' in html
    html = render('{% trending_products category="Hair" title="Hair favourites" %}')
    assert '<h2 class="rec-title">Hair favourites</h2>' in html
    # The shampoo was bought with nothing either, but one title is like it: like products and
    # popular ones, none bought with it, so the heading is the first one's reason.
    html = render(source, product=catalog.products["Argan shampoo"])
    assert '<h2 class="rec-title">Similar to Argan shampoo</h2>' in html
    buy_together(catalog, "Argan shampoo", "Red nail polish", basket="pair")
    refresh_statistics()
    clear_all_caches()
    html = render(source, product=catalog.products["Argan shampoo"])
    assert '<h2 class="rec-title">Frequently bought together</h2>' in html


def test_as_variable_form(catalog):
    add_event(catalog, "view", "Cuticle oil", session="x")
    refresh_statistics()
    html = render(
        "{% trending_products limit=2 as picks %}{% for p in picks %}{{ p.title }}|{{ p.recommendation.reason }};{% endfor %}"
    )
    assert html.startswith("Cuticle oil|Trending now;")
    # `exclude=` takes a key as the API does ("06" for 6): a product on product blocks.
    source = (
        "{% trending_products limit=2 exclude=gone as picks %}{% for p in picks %}{{ p.title }};{% endfor %}"
    )
    assert not render(source, gone="0" + catalog.id("Cuticle oil")).startswith("Cuticle oil")


def test_stores_and_search_tags(catalog, model):
    html = render("{% recommended_stores %}", user=catalog.users["alice"])
    assert re.findall(r'data-store-id="(\d+)"', html)[0] == str(catalog.stores["Face"].pk)
    # A store block's `exclude=` names stores.
    html = render(
        "{% recommended_stores exclude=gone %}", user=catalog.users["alice"], gone=catalog.stores["Face"]
    )
    assert str(catalog.stores["Face"].pk) not in re.findall(r'data-store-id="(\d+)"', html)
    html = render("{% personalized_search query %}", query="serum")
    assert {catalog.title(pid) for pid in product_ids(html)} >= {"Retinol night serum", "Vitamin C serum"}
    assert render("{% personalized_search query %}", query="") == ""


def test_a_database_error_renders_an_empty_block_and_the_page_goes_on(busy_shop, caplog):
    catalog = busy_shop
    add_event(catalog, "view", "Argan shampoo", user="bob")
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {ProductPopularity._meta.db_table} RENAME TO broken_popularity")
    with caplog.at_level(logging.ERROR, logger="recommendations"):
        html = render(
            "<main>{% trending_products %}</main><aside>{% recently_viewed %}</aside>",
            user=catalog.users["bob"],
        )
    assert html.startswith("<main></main><aside>")
    assert product_ids(html) == [catalog.id("Argan shampoo")]  # later blocks still query fine
    assert "The trending block failed" in caplog.text and "broken_popularity" not in html


def test_errors_are_raised_in_debug_when_asked(catalog, settings):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER TABLE {ProductPopularity._meta.db_table} RENAME TO broken_popularity")
    settings.DEBUG = True
    assert render("{% trending_products %}") == ""  # DEBUG alone still renders empty
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "RAISE_TEMPLATE_ERRORS": True}
    with pytest.raises(Exception, match="productpopularity"):
        render("{% trending_products %}")


def test_unknown_options_fail_at_compile_time(catalog):
    with pytest.raises(TemplateSyntaxError, match="unknown option 'limt'"):
        render("{% trending_products limt=3 %}")
    with pytest.raises(TemplateSyntaxError, match=r"similar_products <product>"):
        render("{% similar_products %}")


def test_new_arrivals_and_recently_viewed_tags(catalog):
    add_event(catalog, "view", "Clay face mask", user="bob")
    html = render(
        "{% recently_viewed %}{% new_arrivals category='Nails' limit=2 %}", user=catalog.users["bob"]
    )
    assert catalog.titles(product_ids(html)) == ["Clay face mask", *reversed(TITLES["Nails"][-2:])]
