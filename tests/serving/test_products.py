"""Each product recommendation type, with and without an active model."""

import datetime as dt

import pytest
from django.db import connection
from django.db.models import QuerySet
from django.test import Client
from django.test.utils import CaptureQueriesContext

from recommendations.models import PairKind, ProductPair, ProductVector
from recommendations.serving import history, products, variants
from recommendations.serving.catalog import index_products
from recommendations.serving.errors import NotFound
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Audience, Kind, Options
from recommendations.vectors import queries
from shop.models import Product
from tests.serving.conftest import TITLES, add_event, buy_together
from tests.state import clear_all_caches

pytestmark = pytest.mark.django_db

EXPLAIN = Options(explain=True)


def titles(catalog, result):
    return catalog.titles(result.ids)


def test_for_you_follows_the_stored_user_vector(catalog, model):
    result = products.for_you(Audience(user=catalog.users["alice"]), EXPLAIN)
    found = titles(catalog, result)
    assert set(found[:3]) <= set(TITLES["Face"])
    assert found[3] not in TITLES["Face"]  # at most 3 per store (all face care is one store)
    assert result.items[0][1].source == "two_tower"
    assert result.items[0][1].reason == "Picked for you"
    assert result.model_version_id == model.pk


def test_a_view_changes_the_next_answer_without_retraining(catalog, model, settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "REALTIME_SESSION_WEIGHT": 0.75}
    alice = Audience(user=catalog.users["alice"])
    before = titles(catalog, products.for_you(alice, Options(limit=3)))
    assert set(before) <= set(TITLES["Face"])

    # Alice looks at nail polish twice and adds it to her cart: nails move to the top.
    add_event(catalog, "view", "Red nail polish", user="alice")
    add_event(catalog, "add_to_cart", "Red nail polish", user="alice")
    result = products.for_you(Audience(user=catalog.users["alice"]), EXPLAIN)
    after = titles(catalog, result)
    assert after[0] in TITLES["Nails"]
    assert "Red nail polish" not in after  # what she just looked at is not proposed again
    top = result.items[0][1]
    assert top.source == "realtime"
    assert top.reason == "Because you added Red nail polish to your cart"

    # She takes it out of the cart again: it was a look, no more, and the reason says so.
    removal = add_event(catalog, "remove_from_cart", "Red nail polish", user="alice", value=1)
    again = products.for_you(Audience(user=catalog.users["alice"]), EXPLAIN)
    assert again.items[0][1].reason == "Because you viewed Red nail polish"
    settled = history.recent_history(Audience(user=catalog.users["alice"]))
    assert [e.event_type for e in settled.events] == ["view", "view"]
    assert settled.fingerprint == str(removal.pk)  # the removal is news: cached lists are not reused


def test_anonymous_session_is_personalised_from_its_events(catalog, model):
    add_event(catalog, "view", "Argan shampoo", session="s1")
    result = products.for_you(Audience(session_id="s1"), EXPLAIN)
    assert titles(catalog, result)[:3] == ["Keratin conditioner", "Hair mask repair", "Dry shampoo spray"]
    assert result.items[0][1].reason == "Because you viewed Argan shampoo"
    assert result.items[0][1].source == "session"
    # Only what is like the shampoo says so; the taste's other nearest products do not.
    reasons = {
        catalog.titles([pid])[0]: rec.reason
        for pid, rec in zip(result.ids, result.recommendations, strict=True)
    }
    assert {title for title, reason in reasons.items() if reason.startswith("Because")} == set(
        TITLES["Hair"]
    ) - {"Argan shampoo"}
    assert all(reason == "Picked for you" for title, reason in reasons.items() if title not in TITLES["Hair"])


def test_new_visitor_gets_trending(catalog, model):
    add_event(catalog, "purchase", "Cuticle oil", user="bob")
    add_event(catalog, "view", "Clay face mask", user="bob")
    refresh_statistics()
    result = products.for_you(Audience(session_id="never-seen"), EXPLAIN)
    assert titles(catalog, result)[:2] == ["Cuticle oil", "Clay face mask"]
    assert result.items[0][1].reason == "Trending now"


def test_without_a_model_for_you_uses_co_occurrence(catalog):
    # Other shoppers who viewed the shampoo also viewed the cuticle oil.
    for session in ("a", "b", "c"):
        add_event(catalog, "view", "Argan shampoo", session=session)
        add_event(catalog, "view", "Cuticle oil", session=session)
    add_event(catalog, "view", "Retinol night serum", session="d")
    refresh_statistics()
    add_event(catalog, "view", "Argan shampoo", session="me")
    result = products.for_you(Audience(session_id="me"), EXPLAIN)
    assert titles(catalog, result)[0] == "Cuticle oil"
    assert result.items[0][1].source == "co_view"
    assert result.items[0][1].reason == "Viewed together with Argan shampoo"
    assert result.model_version_id is None


def test_similar_blends_vectors_and_title_similarity(catalog, model):
    result = products.similar(catalog.id("Argan shampoo"), Audience(), EXPLAIN)
    found = titles(catalog, result)
    assert "Argan shampoo" not in found
    assert set(found[:3]) == {"Keratin conditioner", "Hair mask repair", "Dry shampoo spray"}
    assert result.items[0][1].reason == "Similar to Argan shampoo"


def test_similar_products_with_titles_reads_pg_trgm_similarity_in_one_statement(catalog, model):
    seed = catalog.id("Argan shampoo")
    with CaptureQueriesContext(connection) as executed:
        rows = queries.similar_products_with_titles(seed, 5, model)
    assert len([q for q in executed.captured_queries if "set_config" not in q["sql"]]) == 1
    alone = queries.similar_products(seed, 5, model)
    assert [c for _, c, _ in rows] == [c for _, c in alone]  # (products tied at 0 in any order)
    assert [p for p, c, _ in rows if c > 0] == [p for p, c in alone if c > 0]
    with connection.cursor() as cursor:
        for pid, _, title_similarity in rows:
            cursor.execute(
                "SELECT similarity(%s, title) FROM recommendations_productdocument WHERE product_id = %s",
                ["Argan shampoo", pid],
            )
            assert title_similarity == pytest.approx(cursor.fetchone()[0])
    assert max(t for *_, t in rows) > 0  # "Dry shampoo spray" shares a word


def test_similar_without_a_model_uses_the_category_and_titles(catalog):
    result = products.similar(catalog.id("Argan shampoo"), Audience(), EXPLAIN)
    found = titles(catalog, result)
    assert found[0] == "Dry shampoo spray"  # shares "shampoo"
    assert set(found) == {"Keratin conditioner", "Hair mask repair", "Dry shampoo spray"}
    assert result.items[0][1].source == "content"


def test_bought_together_from_co_purchases(catalog, settings):
    for user in ("alice", "bob"):
        add_event(catalog, "purchase", "Red nail polish", user=user)
        add_event(catalog, "purchase", "Matte top coat", user=user)
    add_event(catalog, "purchase", "Cuticle oil", user="bob")
    refresh_statistics()
    with CaptureQueriesContext(connection) as captured:
        result = products.bought_together(catalog.id("Red nail polish"), Audience(), EXPLAIN)
    # One basket is no pattern: the cuticle oil, bought with the polish by bob alone, is not a
    # pair (its cosine of 1 came first) until PAIRS_MIN_SHOPPERS is one.
    assert titles(catalog, result)[0] == "Matte top coat"
    assert [rec.source for rec in result.recommendations if rec.product_id == catalog.id("Cuticle oil")] != [
        "co_purchase"
    ]
    # Bought together, then viewed together: both kinds of pairs in one read.
    assert len([q for q in captured.captured_queries if "recommendations_productpair" in q["sql"]]) == 1
    assert result.items[0][1].reason == "Bought together with Red nail polish"
    assert result.items[0][1].source == "co_purchase"
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PAIRS_MIN_SHOPPERS": 1}
    refresh_statistics()
    clear_all_caches()
    result = products.bought_together(catalog.id("Red nail polish"), Audience(), EXPLAIN)
    assert titles(catalog, result)[:2] == ["Matte top coat", "Cuticle oil"]


def test_cart_adds_a_browser_sends_are_not_bought_together(catalog):
    """Three browsers put the shampoo and the cuticle oil in their carts through the beacon
    (and take the oil out again): nobody bought either, so neither the pairs nor the shelf
    says they were bought together."""
    for _ in range(3):
        browser = Client()
        sent = [
            {"event_type": "add_to_cart", "product_id": catalog.id(title), "value": 1}
            for title in ("Argan shampoo", "Cuticle oil")
        ]
        sent.append({"event_type": "remove_from_cart", "product_id": catalog.id("Cuticle oil"), "value": 1})
        response = browser.post("/api/events/", {"events": sent}, content_type="application/json")
        assert response.status_code == 200, response.content
    refresh_statistics()
    assert not ProductPair.objects.filter(kind=PairKind.BOUGHT).exists()
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), EXPLAIN)
    assert "co_purchase" not in [rec.source for rec in result.recommendations]
    page = Client().get(catalog.products["Argan shampoo"].get_absolute_url()).content.decode()
    assert "Shoppers who bought this also bought." not in page


def test_bought_together_falls_back_to_similar_products(catalog, model):
    # Nobody bought or viewed the shampoo with anything: the vector neighbours fill in.
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), EXPLAIN)
    assert set(titles(catalog, result)[:3]) == {
        "Keratin conditioner",
        "Hair mask repair",
        "Dry shampoo spray",
    }
    assert result.items[0][1].source == "vector"
    assert result.items[0][1].reason == "Similar to Argan shampoo"


def hair_wrap(catalog, store: str = "Face") -> Product:
    """A hair product with no vector in the model, which shoppers bought: popular in Hair."""
    wrap = Product.objects.create(
        title="Silk hair wrap", slug="silk-hair-wrap", category=catalog.categories["Hair"],
        store=catalog.stores[store], price=5, stock=5,
    )  # fmt: skip
    index_products()
    catalog.products[wrap.title] = wrap
    add_event(catalog, "purchase", wrap.title, session="someone")
    refresh_statistics()
    return wrap


def test_bought_together_pads_with_close_matches_only_and_says_why_the_rest_is_there(catalog, model):
    """Nobody bought the shampoo with anything: its close matches (the hair products) fill
    in, not the face and nail care that merely come next among its neighbours; then the
    category's popular product, which says it is popular rather than similar."""
    hair_wrap(catalog)
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=6, explain=True))
    assert [(catalog.title(rec.product_id), rec.reason) for rec in result.recommendations] == [
        ("Dry shampoo spray", "Similar to Argan shampoo"),
        ("Keratin conditioner", "Similar to Argan shampoo"),
        ("Hair mask repair", "Similar to Argan shampoo"),
        ("Silk hair wrap", "Popular in Hair"),
    ]


def test_a_shelf_of_only_the_categorys_popular_products_is_headed_by_what_it_holds(catalog):
    """Nobody bought or viewed the conditioner with anything and no hair product's title is like
    its own: its bought-together shelf holds the category's popular products, and the page heads
    it "Popular in Hair", not "Frequently bought together" nor "Goes well with this product"."""
    for title in ("Argan shampoo", "Hair mask repair"):
        add_event(catalog, "purchase", title, session="someone")
    refresh_statistics()
    page = Client().get(catalog.products["Keratin conditioner"].get_absolute_url()).content.decode()
    shelf = page.split('id="bought-together"')[1].split("</section>")[0]
    assert "<h2>Popular in Hair</h2>" in shelf
    assert "Frequently bought together" not in shelf and "Goes well with" not in shelf
    # Once it was bought with something (and the kept list expired), the title holds again.
    for session in ("a", "b"):
        for title in ("Keratin conditioner", "Cuticle oil"):
            add_event(catalog, "purchase", title, session=session)
    refresh_statistics()
    clear_all_caches()
    page = Client().get(catalog.products["Keratin conditioner"].get_absolute_url()).content.decode()
    shelf = page.split('id="bought-together"')[1].split("</section>")[0]
    assert "<h2>Frequently bought together</h2>" in shelf and "Shoppers who bought this also bought." in shelf


def test_bought_together_calls_no_title_that_shares_nothing_with_this_one_similar(catalog):
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=6, explain=True))
    similar = [catalog.title(r.product_id) for r in result.recommendations if r.reason.startswith("Similar")]
    assert similar == ["Dry shampoo spray"]  # the only other title with "shampoo" in it
    assert len(result) == 3  # the other hair products, as what is new in the category


def test_the_store_cap_puts_like_products_before_the_categorys_popular_ones(catalog, model, settings):
    """Eight products were bought with the shampoo, enough for the shelf: like products are
    not gathered. Seven sell out; the backfill tops the shelf up. One per store holds back the
    second like product (all are the hair store's), but not behind the popular hair wrap of a
    store with nothing on the shelf yet: like products come first."""
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"bought_together": {"max_per_store": 1}},
    }
    hair_wrap(catalog, store="Nails")
    others = [*TITLES["Face"], *TITLES["Nails"]]
    for n, title in enumerate(others):
        buy_together(catalog, "Argan shampoo", title, basket=f"buyer{n}")
    refresh_statistics()
    Product.objects.filter(title__in=others[1:]).update(stock=0)
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=3, explain=True))
    assert [(catalog.title(rec.product_id), rec.source) for rec in result.recommendations] == [
        ("Retinol night serum", "co_purchase"),
        ("Dry shampoo spray", "vector"),
        ("Keratin conditioner", "vector"),
    ]


def test_bought_together_keeps_its_stores_close_matches_before_weak_ones_of_others(catalog, model):
    """Nothing was bought with the shampoo; its store sells five hair products like it. Capped
    at three per store, the fourth and fifth made way for a face product that is only half
    like it ("Similar to" a shampoo): the five of its store fill the shelf."""
    hair, face = catalog.categories["Hair"], catalog.categories["Face"]
    extra = {"Hair oil": ([1, 0, 0, 0.35], hair, "Hair"), "Hair serum": ([1, 0, 0, 0.4], hair, "Hair")}
    extra["Face mist"] = ([0.7, 0.7, 0, 0], face, "Face")
    for title, (vector, category, store) in extra.items():
        product = Product.objects.create(
            title=title, slug=title.lower().replace(" ", "-"), category=category,
            store=catalog.stores[store], price=5, stock=5,
        )  # fmt: skip
        catalog.products[title] = product
        ProductVector.objects.create(model_version=model, product_id=str(product.pk), embedding=vector)
    index_products()
    queries.clear_cache()
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=5))
    assert set(catalog.titles(result.ids)) == {*TITLES["Hair"], "Hair oil", "Hair serum"} - {"Argan shampoo"}


def test_bought_together_is_filled_when_its_pairs_sell_out(catalog, settings):
    """Five products were bought with the shampoo: plenty for a shelf of two, so nothing else
    is gathered. Four of them sell out: the backfill (like products, then the category's
    popular ones) fills the shelf, and is kept like the list, so a shelf short on every
    request does not gather it again each time."""
    hair = catalog.categories["Hair"]
    for title in ("Scalp scrub", "Hair clips"):
        catalog.products[title] = Product.objects.create(
            title=title, slug=title.lower().replace(" ", "-"), category=hair, store=catalog.stores["Hair"],
            price=5, stock=5,
        )  # fmt: skip
    elsewhere = Product.objects.create(
        title="Argan hair oil",
        slug="argan-hair-oil",
        category=hair,
        store=catalog.stores["Face"],
        price=5,
        stock=5,
    )
    index_products()
    pairs = ["Keratin conditioner", "Hair mask repair", "Dry shampoo spray", "Scalp scrub", "Hair clips"]
    for n, title in enumerate(pairs):
        buy_together(catalog, "Argan shampoo", title, basket=f"buyer{n}")
    refresh_statistics()
    Product.objects.filter(title__in=pairs[1:]).update(stock=0)
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=2))
    assert result.ids == [catalog.id("Keratin conditioner"), str(elsewhere.pk)]
    assert result.items[0][1].source == "co_purchase"
    with CaptureQueriesContext(connection) as captured:
        again = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=2))
    assert again.ids == result.ids
    tables = (
        "recommendations_productdocument",
        "recommendations_productpair",
        "recommendations_productpopularity",
    )
    assert not [q["sql"] for q in captured.captured_queries if any(t in q["sql"] for t in tables)]


def test_held_back_pairs_come_before_fallback_products(catalog, settings):
    """The cap of one per store orders the pairs (one, then the other stores' products of
    their tier) but does not cut them: all five pairs come before the like products."""
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"default": {"max_per_store": 1}},
    }
    for n, title in enumerate(["Keratin conditioner", "Hair mask repair", "Dry shampoo spray"]):
        buy_together(catalog, "Argan shampoo", title, basket=f"buyer{n}")
    refresh_statistics()
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), Options(limit=4))
    assert [rec.source for _, rec in result.items][:3] == ["co_purchase"] * 3


def test_bought_together_without_a_model_falls_back_to_titles_in_the_category(catalog):
    result = products.bought_together(catalog.id("Argan shampoo"), Audience(), EXPLAIN)
    assert titles(catalog, result)[0] == "Dry shampoo spray"
    assert result.items[0][1].source == "content"


def test_trending_is_time_decayed_and_per_category(catalog):
    # Ten old views lose to three fresh ones.
    for _ in range(10):
        add_event(catalog, "view", "Argan shampoo", session="x", ago=dt.timedelta(days=20))
    for _ in range(3):
        add_event(catalog, "view", "Vitamin C serum", session="y")
    add_event(catalog, "view", "Red nail polish", session="y")
    refresh_statistics()
    overall = products.trending(Audience(), EXPLAIN)
    assert titles(catalog, overall)[:3] == ["Vitamin C serum", "Red nail polish", "Argan shampoo"]
    in_hair = products.trending(Audience(), Options(category="Hair", explain=True))
    assert titles(catalog, in_hair)[0] == "Argan shampoo"
    assert in_hair.items[0][1].reason == "Popular in Hair"
    # Products nobody touched yet fill in as new arrivals of the category.
    assert set(titles(catalog, in_hair)[1:]) <= set(TITLES["Hair"])
    assert {rec.source for _, rec in in_hair.items[1:]} == {"new"}


def test_trending_before_the_first_refresh_reads_events(catalog):
    add_event(catalog, "purchase", "Clay face mask", session="y")
    result = products.trending(Audience(), Options())
    assert titles(catalog, result)[0] == "Clay face mask"
    assert result.items[0][1].source == "trending" and result.items[1][1].source == "new"


def test_new_arrivals_newest_first(catalog):
    result = products.new_arrivals(Audience(), Options(category="Nails", explain=True))
    # One store: the per-store cap orders the list, it does not cut it to three.
    assert titles(catalog, result) == list(reversed(TITLES["Nails"]))
    assert result.items[0][1].reason == "New in Nails"


def test_recently_viewed_most_recent_first(catalog):
    add_event(catalog, "view", "Argan shampoo", user="bob", ago=dt.timedelta(minutes=5))
    add_event(catalog, "view", "Cuticle oil", user="bob", ago=dt.timedelta(minutes=3))
    add_event(catalog, "purchase", "Clay face mask", user="bob", ago=dt.timedelta(minutes=2))
    add_event(catalog, "view", "Argan shampoo", user="bob", ago=dt.timedelta(minutes=1))
    result = products.recently_viewed(Audience(user=catalog.users["bob"]), Options())
    assert titles(catalog, result) == ["Argan shampoo", "Cuticle oil"]


def test_recently_viewed_holds_products_however_often_one_was_viewed(catalog):
    add_event(catalog, "view", "Argan shampoo", user="bob", ago=dt.timedelta(minutes=30))
    add_event(catalog, "view", "Cuticle oil", user="bob", ago=dt.timedelta(minutes=29))
    for minutes in range(20, 0, -1):  # back and forth on one product page
        add_event(catalog, "view", "Clay face mask", user="bob", ago=dt.timedelta(minutes=minutes))
    result = products.recently_viewed(Audience(user=catalog.users["bob"]), Options(limit=3))
    assert titles(catalog, result) == ["Clay face mask", "Cuticle oil", "Argan shampoo"]
    # More views of it than the latest views read: the views are grouped by product instead.
    for seconds in range(100, 0, -1):
        add_event(catalog, "view", "Clay face mask", user="bob", ago=dt.timedelta(seconds=seconds))
    again = products.recently_viewed(Audience(user=catalog.users["bob"]), Options(limit=3))
    assert titles(catalog, again) == ["Clay face mask", "Cuticle oil", "Argan shampoo"]


def test_buy_again_keeps_replenishable_products_due_first(catalog):
    # Other shoppers rebuy shampoo about every 30 days; nobody rebuys the top coat.
    for days in (60, 30):
        add_event(catalog, "purchase", "Argan shampoo", user="alice", ago=dt.timedelta(days=days))
    add_event(catalog, "purchase", "Argan shampoo", user="bob", ago=dt.timedelta(days=29))
    add_event(catalog, "purchase", "Cuticle oil", user="bob", ago=dt.timedelta(days=2))
    add_event(catalog, "purchase", "Matte top coat", user="bob", ago=dt.timedelta(days=1))
    for days in (20, 10):
        add_event(catalog, "purchase", "Cuticle oil", user="alice", ago=dt.timedelta(days=days))
    refresh_statistics()
    result = products.buy_again(Audience(user=catalog.users["bob"]), EXPLAIN)
    # Shampoo: bought 29 days ago with a 30-day cycle is due; cuticle oil (10-day cycle) not yet.
    assert titles(catalog, result) == ["Argan shampoo", "Cuticle oil"]
    assert result.items[0][1].reason == "You bought this 29 days ago"


def test_buy_again_says_one_day_not_one_days(catalog):
    for days in (3, 2):  # rebought by Bob himself: replenishable for him
        add_event(catalog, "purchase", "Cuticle oil", user="bob", ago=dt.timedelta(days=days))
    add_event(catalog, "purchase", "Cuticle oil", user="bob", ago=dt.timedelta(days=1, hours=2))
    result = products.buy_again(Audience(user=catalog.users["bob"]), EXPLAIN)
    assert result.items[0][1].reason == "You bought this 1 day ago"


def test_rerank_orders_given_products_by_taste(catalog, model):
    given = catalog.ids("Argan shampoo", "Red nail polish", "Vitamin C serum", "Clay face mask")
    result = products.rerank(given, Audience(user=catalog.users["alice"]), Options())
    assert set(titles(catalog, result)[:2]) == {"Clay face mask", "Vitamin C serum"}
    assert set(result.ids) == set(given)


def test_rerank_without_a_model_uses_popularity_and_keeps_the_rest_in_order(catalog):
    add_event(catalog, "purchase", "Red nail polish", session="x")
    refresh_statistics()
    given = catalog.ids("Argan shampoo", "Cuticle oil", "Red nail polish")
    result = products.rerank(given, Audience(), EXPLAIN)
    assert titles(catalog, result) == ["Red nail polish", "Argan shampoo", "Cuticle oil"]
    # A stranger's order is the shop's popularity, and the reason says so.
    assert result.items[0][1].reason == "Popular with shoppers"


def test_results_are_a_queryset_of_the_host_model_in_score_order(catalog, model):
    result = products.for_you(Audience(user=catalog.users["alice"]), Options(limit=4))
    queryset = result.queryset()
    assert isinstance(queryset, QuerySet) and queryset.model is Product
    assert [str(p.pk) for p in queryset] == result.ids
    assert [str(p.pk) for p in queryset.filter(price__gte=12)] == [
        pid for pid in result.ids if catalog.products[catalog.title(pid)].price >= 12
    ]


def lookups(captured) -> list[str]:
    """Statements that only ask whether a product or store exists."""
    return [
        q["sql"] for q in captured.captured_queries if q["sql"].startswith('SELECT "shop_product"."id" FROM')
    ]


@pytest.mark.parametrize("service", [products.similar, products.bought_together])
def test_the_named_product_is_proven_by_the_rules_read_and_looked_up_only_when_unavailable(
    catalog, model, service
):
    seed = catalog.products["Argan shampoo"]
    with CaptureQueriesContext(connection) as captured:
        assert service(f"00{seed.pk}", Audience(), Options(limit=3)).ids  # its key, normalised
    assert not lookups(captured)
    Product.objects.filter(pk=seed.pk).update(stock=0)  # not available, still a product
    with CaptureQueriesContext(connection) as captured:
        found = service(str(seed.pk), Audience(), Options(limit=3))
    assert found.ids and str(seed.pk) not in found.ids
    assert len(lookups(captured)) == 1
    for unknown in ("999999", "not-a-number", "99999999999999999999999"):
        with pytest.raises(NotFound, match="No product"):
            service(unknown, Audience(), Options())


def test_a_store_is_proven_by_its_products(catalog, model):
    nails = catalog.stores["Nails"]
    with CaptureQueriesContext(connection) as captured:
        assert products.store_products(str(nails.pk), Audience(), Options()).ids
    assert not [q for q in captured.captured_queries if '"shop_store"' in q["sql"]]
    Product.objects.filter(store=nails).update(stock=0)
    assert (
        products.store_products(str(nails.pk), Audience(), Options()).ids == []
    )  # exists, sells nothing now
    with pytest.raises(NotFound, match="No store"):
        products.store_products("999999", Audience(), Options())


def test_a_personal_lists_cache_key_names_the_visitor_and_changes_with_their_history(catalog):
    def keys(session: str) -> tuple:
        audience = Audience(session_id=session)
        shared = variants.list_key(Kind.SIMILAR, audience, None, "1", 10)
        return shared, variants.list_key(
            Kind.STORES, audience, None, 10, history=history.recent_history(audience)
        )

    (shared_a, personal_a), (shared_b, personal_b) = keys("a"), keys("b")
    assert shared_a == shared_b and personal_a != personal_b
    add_event(catalog, "view", "Argan shampoo", session="a")
    shared, personal = keys("a")
    assert shared == shared_a and personal != personal_a  # a new event: a new key, nothing to invalidate
