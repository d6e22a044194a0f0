"""Stores, search, the campaign ranking hook, the QuerySet API and the tables behind them."""

import datetime as dt
import threading

import pytest
from django.core.cache import caches
from django.db import connection
from django.db.models import QuerySet
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.models import (
    PairKind,
    ProductDocument,
    ProductPair,
    ProductPopularity,
    ServedRecommendation,
)
from recommendations.progress import Progress
from recommendations.serving import cache as cache_module
from recommendations.serving import products, search, stores
from recommendations.serving.cache import ProcessCache
from recommendations.serving.catalog import index_products
from recommendations.serving.errors import InvalidParameters
from recommendations.serving.products import store_products
from recommendations.serving.queryset import RecommendationManager, for_user
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Audience, Options
from recommendations.vectors import queries
from shop.models import Product, Store
from tests.serving.conftest import TITLES, add_event
from tests.state import UNREACHABLE_CACHES, clear_all_caches
from tests.storefront.conftest import plan_of

pytestmark = pytest.mark.django_db


def store_names(result):
    return [str(obj) for obj, _ in result.items]


def test_stores_for_a_user_follow_the_store_vectors(catalog, model):
    result = stores.stores_for_user(Audience(user=catalog.users["alice"]), Options(explain=True))
    assert store_names(result)[0] == "Face Store"
    assert result.items[0][1].reason == "Matches what you like"
    assert isinstance(result.queryset().first(), Store)


def test_only_stores_the_visitors_taste_leans_towards_match_what_they_like(catalog, model):
    """The visitor viewed nail polish: the nails store matches their taste; the others score
    0 against it. The hair store is popular and says so; the face store is neither."""
    add_event(catalog, "purchase", "Argan shampoo", session="someone")
    refresh_statistics()
    add_event(catalog, "view", "Red nail polish", session="me")
    result = stores.stores_for_user(Audience(session_id="me"), Options(explain=True))
    assert [(str(store), rec.reason) for store, rec in result.items] == [
        ("Nails Store", "Matches what you like"),
        ("Hair Store", "Popular with shoppers"),
        ("Face Store", "Picked for you"),
    ]


def test_shop_wide_store_popularity_is_read_only_when_the_list_is_short(catalog, model):
    with CaptureQueriesContext(connection) as captured:
        result = stores.stores_for_user(Audience(user=catalog.users["alice"]), Options(limit=1))
    assert store_names(result) == ["Face Store"]
    assert not [q for q in captured.captured_queries if "recommendations_productpopularity" in q["sql"]]


def test_stores_without_a_model_come_from_history_then_popularity(catalog):
    add_event(catalog, "purchase", "Cuticle oil", user="alice")
    add_event(catalog, "purchase", "Argan shampoo", user="bob")
    add_event(catalog, "purchase", "Keratin conditioner", user="bob")
    refresh_statistics()
    result = stores.stores_for_user(Audience(user=catalog.users["alice"]), Options(explain=True))
    assert store_names(result) == ["Nails Store", "Hair Store"]
    assert [rec.reason for _, rec in result.items] == [
        "You looked at products from this store",
        "Popular with shoppers",
    ]


def test_similar_stores(catalog, model):
    result = stores.similar_stores(str(catalog.stores["Hair"].pk), Audience(), Options())
    assert "Hair Store" not in store_names(result) and len(result) == 2


def test_similar_stores_without_a_model_share_categories(catalog):
    other = Store.objects.create(name="Hair Plus", slug="hair-plus")
    Product.objects.create(
        title="Silk hair oil",
        slug="silk-hair-oil",
        category=catalog.categories["Hair"],
        store=other,
        price=9,
        stock=3,
    )
    index_products()
    result = stores.similar_stores(str(catalog.stores["Hair"].pk), Audience(), Options(explain=True))
    assert store_names(result)[0] == "Hair Plus"
    assert result.items[0][1].reason == "Sells what this store sells"


def test_store_products_are_that_stores_only_ranked_for_the_user(catalog, model):
    add_event(catalog, "view", "Hair mask repair", session="x")
    result = store_products(str(catalog.stores["Hair"].pk), Audience(session_id="x"), Options(limit=2))
    assert set(catalog.titles(result.ids)) <= set(TITLES["Hair"]) and len(result) == 2
    nails = store_products(str(catalog.stores["Nails"].pk), Audience(session_id="x"), Options())
    assert set(catalog.titles(nails.ids)) == set(TITLES["Nails"])  # no per-store cap inside one store


def test_a_stores_products_are_ranked_in_one_statement(catalog, model):
    face = [0.0, 1.0, 0.0, 0.0]
    with CaptureQueriesContext(connection) as captured:
        ranked = queries.nearest_products(face, 3, model, store_id=str(catalog.stores["Nails"].pk))
    # One statement besides the session's search settings (set once per connection).
    assert len([q for q in captured.captured_queries if "set_config" not in q["sql"]]) == 1
    assert set(catalog.titles(pid for pid, _ in ranked)) <= set(TITLES["Nails"]) and len(ranked) == 3
    hair = queries.nearest_products(
        face, 10, model, store_id=str(catalog.stores["Hair"].pk), exclude=[catalog.id("Argan shampoo")]
    )
    assert set(catalog.titles(pid for pid, _ in hair)) == set(TITLES["Hair"]) - {"Argan shampoo"}
    assert queries.nearest_products(face, 3, model, store_id="no-such-store") == []


def test_search_full_text_and_typos(catalog):
    found = lambda q: catalog.titles(search.search(q, Audience(), Options()).ids)  # noqa: E731
    assert set(found("serum")) == {"Retinol night serum", "Vitamin C serum"}
    assert set(found("serums")) == {"Retinol night serum", "Vitamin C serum"}  # stemming
    assert "Retinol night serum" in found("retinl")  # typo
    # Typos further off than pg_trgm's default cut-off, when nothing matches the words.
    assert found("cutcle") == ["Cuticle oil"] and found("polsh") == ["Red nail polish"]
    with connection.cursor() as cursor:  # the lower cut-off was for those reads alone
        cursor.execute("SHOW pg_trgm.word_similarity_threshold")
        assert cursor.fetchone()[0] == "0.6"
    assert found("nail polish")[0] == "Red nail polish"
    assert found("zzzz qqqq") == []
    # "-" is web search's NOT; PostgreSQL nests repeated ones, and about thirty overflowed it.
    assert "Retinol night serum" in found("serum " + "-" * 60 + "vitamin")
    assert "Red nail polish" in found("nail" + " -" * 60 + " serum")
    with pytest.raises(InvalidParameters, match="Give a search query"):
        search.search("   ", Audience(), Options())


def test_search_folds_accents_both_ways(catalog):
    balm = catalog.id("Hydrating face cream")
    Product.objects.filter(pk=balm).update(title="Hydrating crème brûlée balm")
    index_products()
    first = lambda q: search.search(q, Audience(), Options()).ids[0]  # noqa: E731
    assert first("creme brulee") == balm
    assert first("CRÈME") == balm
    assert first("vitámin") == catalog.id("Vitamin C serum")


def test_store_and_category_names_find_their_products(catalog):
    Store.objects.filter(pk=catalog.stores["Nails"].pk).update(name="Northwind Lacquer")
    catalog.categories["Face"].name = "Skin Care"
    catalog.categories["Face"].save()
    index_products()
    found = lambda q: set(catalog.titles(search.search(q, Audience(), Options()).ids))  # noqa: E731
    assert found("northwind lacquer") == set(TITLES["Nails"])
    assert found("skin care") == set(TITLES["Face"])


def socks_in_one_title_and_four_descriptions(catalog) -> str:
    """The face products say "socks" in their descriptions; the one titled so is returned."""
    for title in TITLES["Face"]:
        Product.objects.filter(pk=catalog.id(title)).update(description=f"{title}: soft as socks")
    Product.objects.filter(pk=catalog.id("Cuticle oil")).update(title="Cotton socks")
    index_products()
    return catalog.id("Cuticle oil")


def test_a_title_match_comes_before_the_word_in_descriptions(catalog, model):
    """The query's meaning is mostly that of the many description hits, yet the one product
    named by the query leads."""
    socks = socks_in_one_title_and_four_descriptions(catalog)
    assert search.search("socks", Audience(), Options()).ids[0] == socks


def test_short_words_are_not_stretched_into_typos(catalog):
    found = lambda q: catalog.titles(search.search(q, Audience(), Options()).ids)  # noqa: E731
    assert found("nap") == []  # not "Nail strengthener", which shares "na" (similarity 0.5)
    Product.objects.filter(pk=catalog.id("Argan shampoo")).update(title="Theory argan shampoo")
    index_products()
    assert found("the") == found("The and a") == []  # stop words: no "Theory"
    assert found("cutcle") == ["Cuticle oil"]


def test_a_sold_out_exact_hit_leaves_room_for_near_spellings(catalog):
    Product.objects.filter(pk=catalog.id("Cuticle oil")).update(stock=0)
    nails = catalog.products["Red nail polish"]
    pusher = Product.objects.create(
        title="Cutcle pusher", slug="pusher", category=nails.category, store=nails.store, price=4, stock=3
    )
    index_products()
    result = search.search("cuticle", Audience(), Options(explain=True))
    assert result.ids == [str(pusher.pk)]
    assert [rec.reason for _, rec in result.items] == ["Close to “cuticle”"]


def test_a_respelling_beside_exact_hits_comes_before_the_meaning(catalog, model):
    """ "serums" matches serums; "Serrum" is the same word spelt another way, not a longer word."""
    Product.objects.filter(pk=catalog.id("Matte top coat")).update(title="Serrum top coat")
    index_products()
    order = catalog.titles(search.search("serum", Audience(), Options()).ids)
    assert set(order[:2]) == {"Retinol night serum", "Vitamin C serum"}
    assert order[2] == "Matte top coat"  # the product, under the title the fixture gave it


def test_a_respelling_need_not_hold_the_query_s_stop_words(catalog, model):
    """ "serum for face": "Serrum face oil" respells every word search reads; "for" it does
    not read, so the title need not hold it (it was scored as a title with some of the words,
    a tenth of its similarity)."""
    Product.objects.filter(pk=catalog.id("Matte top coat")).update(title="Serrum face oil")
    index_products()
    exact, near = search.keyword_hits("serum for face")
    assert min(exact.values()) > near[catalog.id("Matte top coat")] > 0.8


def test_british_and_american_spellings_find_each_other(catalog):
    """The English stemmer reads "moisturizing" as "moistur" and "moisturising" as
    "moisturis", and leaves "gray" and "colour" as they are: full-text search looks for each
    word's other regular spelling too, keeping phrases, exclusions and several words' AND."""
    for title, new_title in [
        ("Hydrating face cream", "Moisturising cream"),
        ("Clay face mask", "Daily Moisturiser"),
        ("Matte top coat", "Grey top coat"),
        ("Red nail polish", "Colour nail polish"),
        ("Nail strengthener", "Color nail strengthener"),
    ]:
        Product.objects.filter(pk=catalog.id(title)).update(title=new_title)
    index_products()
    exact = lambda q: set(catalog.titles(search.keyword_hits(q)[0]))  # noqa: E731
    assert exact("moisturizer") == exact("moisturisers") == {"Clay face mask"}
    exact_hits, near = search.keyword_hits("moisturizing")
    assert catalog.titles(exact_hits) == ["Hydrating face cream"]
    # "Moisturiser", another word of the stem, found by full-text search (not a 0.3 typo).
    assert near[catalog.id("Clay face mask")] == 0.5 + search.STEM_ONLY_SHARE / 2
    assert "Matte top coat" in exact("gray") and exact("grey coat") == {"Matte top coat"}
    assert exact("color") == exact("colour") == {"Red nail polish", "Nail strengthener"}
    assert exact('"moisturizing cream"') == {"Hydrating face cream"}
    assert exact("nail -colour") == exact("nail -color") == {"Matte top coat", "Cuticle oil"}
    assert exact("colour nail polish") == {"Red nail polish"}


def test_the_near_search_leaves_out_the_query_s_stop_words(catalog, model):
    """ "serum for your face": "for" and "your" are in no title of a face serum, and pg_trgm
    compared them too, so "Serrum face oil" was not near at all."""
    Product.objects.filter(pk=catalog.id("Matte top coat")).update(title="Serrum face oil")
    index_products()
    exact, near = search.keyword_hits("serum for your face")
    assert min(exact.values()) > near[catalog.id("Matte top coat")] > 0.8
    # A typo alone, no hit (the statement that finds none names the words it reads).
    Product.objects.filter(pk__in=catalog.ids("Vitamin C serum", "Retinol night serum")).update(
        title="Toner", description=""
    )
    index_products()
    exact, near = search.keyword_hits("serum for all of your face")
    assert not exact and max(near, key=near.get) == catalog.id("Matte top coat")


def test_a_title_with_only_some_of_the_words_is_not_a_respelling(catalog, model):
    """ "green tea": "Green Thumb gloves" holds one word of two (word similarity 0.7), so it
    comes after what the meaning of the real match finds (face care), not before it."""
    Product.objects.filter(pk=catalog.id("Vitamin C serum")).update(title="Green tea serum")
    Product.objects.filter(pk=catalog.id("Keratin conditioner")).update(title="Green Thumb gloves")
    index_products()
    order = catalog.titles(search.search("green tea", Audience(), Options()).ids)
    assert order[0] == "Vitamin C serum"
    assert order.index("Keratin conditioner") > order.index("Hydrating face cream")


def moisturisers_and_moisture_wicking(catalog) -> None:
    """Titles spelling "moisturizer" either way, and two whose word only shares its stem
    ("moistur", for the English stemmer) with it: "moisture" is another word."""
    Product.objects.filter(pk=catalog.id("Retinol night serum")).update(title="Night moisturizer")
    Product.objects.filter(pk=catalog.id("Hydrating face cream")).update(title="Daily moisturiser")
    Product.objects.filter(pk=catalog.id("Argan shampoo")).update(title="Moisture-wicking headband")
    Product.objects.filter(pk=catalog.id("Red nail polish")).update(title="Moisture-wicking gloves")
    index_products()


@pytest.mark.parametrize("with_model", [False, True])
def test_a_title_spelling_the_word_comes_before_another_word_of_its_stem(catalog, request, with_model):
    if with_model:
        request.getfixturevalue("model")
    moisturisers_and_moisture_wicking(catalog)
    result = search.search("moisturizer", Audience(), Options(explain=True))
    reasons = {product.title: rec.reason for product, rec in result.items}
    order = list(reasons)
    assert order[:2] == ["Night moisturizer", "Daily moisturiser"]
    assert set(order[2:4]) == {"Moisture-wicking headband", "Moisture-wicking gloves"}
    assert reasons["Night moisturizer"] == "Matches “moisturizer”"
    assert reasons["Moisture-wicking gloves"] == "Close to “moisturizer”"


def test_an_inflection_spells_the_word_and_another_word_of_its_stem_does_not(catalog, model):
    """ "hydrating" and "Hydration" stem alike ("hydrat") but are two words; "serums" and
    "serum" are one."""
    Product.objects.filter(pk=catalog.id("Matte top coat")).update(title="Hydration pack")
    index_products()

    def reasons(query):
        result = search.search(query, Audience(), Options(explain=True))
        return {product.title: rec.reason.split(" “")[0] for product, rec in result.items}

    hydrating, hydration = reasons("hydrating"), reasons("hydration")
    assert next(iter(hydrating)) == "Hydrating face cream" and hydrating["Hydration pack"] == "Close to"
    assert next(iter(hydration)) == "Hydration pack" and hydration["Hydrating face cream"] == "Close to"
    serums = reasons("serums")
    assert serums["Retinol night serum"] == serums["Vitamin C serum"] == "Matches"


def test_a_stop_word_of_the_query_shares_no_stem_with_a_title_word(catalog):
    """Full-text search reads no stop word: "Yourself" starting with "your" is no other word
    of a word the title was found for, and the title holds every word that was read."""
    Product.objects.filter(pk=catalog.id("Argan shampoo")).update(title="Treat yourself dad gift set")
    Product.objects.filter(pk=catalog.id("Red nail polish")).update(title="Dad gift mug")
    index_products()
    result = search.search("gift for your dad", Audience(), Options(explain=True))
    reasons = {product.title: rec.reason for product, rec in result.items}
    assert reasons == dict.fromkeys(
        ["Dad gift mug", "Treat yourself dad gift set"], "Matches “gift for your dad”"
    )


def test_keyword_search_reads_the_documents_through_their_indexes(catalog):
    """Telling a spelling from another word of its stem takes no statement of its own: the
    full-text statement reads the titles it ranks, through the full-text index, and the
    near spellings still come through the trigram index."""
    moisturisers_and_moisture_wicking(catalog)
    with CaptureQueriesContext(connection) as executed:
        search.keyword_hits("moisturizer")
    # As run, parameters in place: a "%" of pg_trgm's operators is no placeholder.
    documents = [
        q["sql"].replace("%", "%%") for q in executed.captured_queries if "productdocument" in q["sql"]
    ]
    assert len(documents) == 2
    assert "Bitmap Index Scan on rec_doc_search" in plan_of(documents[0])
    assert "Bitmap Index Scan on rec_doc_title_trgm" in plan_of(documents[1])


def test_a_negated_word_leaves_the_title_match_first(catalog, model):
    socks = socks_in_one_title_and_four_descriptions(catalog)
    assert search.search("socks -wool", Audience(), Options()).ids[0] == socks


def test_long_typos_must_be_alike_as_whole_words(catalog):
    found = lambda q: catalog.titles(search.search(q, Audience(), Options()).ids)  # noqa: E731
    assert found("vmask") == []  # like "mask" in its letters, not as a word: strict similarity 0.33
    Product.objects.filter(pk=catalog.id("Clay face mask")).update(title="Adjustable face mask")
    index_products()
    assert found("table") == []  # inside "Adjustable" (word similarity 0.67), not a word like it
    assert found("polsh") == ["Red nail polish"]


def test_chinese_text_inside_a_title_is_found(catalog):
    Product.objects.filter(pk=catalog.id("Dry shampoo spray")).update(title="静音降噪蓝牙耳机 黑色")
    index_products()
    Product.objects.filter(pk=catalog.id("Argan shampoo")).update(title="有线耳机 白色")
    index_products()
    found = lambda q: set(catalog.titles(search.search(q, Audience(), Options()).ids))  # noqa: E731
    assert found("耳机") == {"Dry shampoo spray", "Argan shampoo"}
    assert found("蓝牙耳机") == found("耳机 -有线") == {"Dry shampoo spray"}
    assert found("耳机 -spray") == {"Argan shampoo"}  # the other's description says "spray"
    assert found("耳机 argan") == {"Argan shampoo"}  # every word, as everywhere else


def test_half_width_and_full_width_katakana_find_each_other(catalog, client):
    """Japanese shops write katakana full-width (コーヒー) or half-width (ｺｰﾋｰ), and so do
    shoppers: both sides are read in NFKC form, so either spelling finds the other."""
    Product.objects.filter(pk=catalog.id("Dry shampoo spray")).update(title="アイスコーヒー 無糖 1L")
    Product.objects.filter(pk=catalog.id("Argan shampoo")).update(title="ﾐﾙｸﾃｨｰ ﾎｯﾄ")
    index_products()
    found = lambda q: {item["id"] for item in client.get("/api/search/", {"q": q}).json()["results"]}  # noqa: E731
    assert found("ｺｰﾋｰ") == found("コーヒー") == {catalog.id("Dry shampoo spray")}
    assert found("ミルクティー") == found("ﾐﾙｸﾃｨｰ") == {catalog.id("Argan shampoo")}
    full_width_1l = "\uff11\uff2c"  # digits and Latin letters are written full-width too
    assert found(f"ｺｰﾋｰ {full_width_1l}") == {catalog.id("Dry shampoo spray")}


def test_search_adds_semantic_matches_and_personalises(catalog, model):
    bob = catalog.titles(search.search("shampoo", Audience(session_id="bob"), Options(explain=True)).ids)
    # The two keyword matches first, then hair products that do not say "shampoo".
    assert set(bob[:2]) == {"Argan shampoo", "Dry shampoo spray"}
    assert set(bob[2:4]) == {"Keratin conditioner", "Hair mask repair"}

    # Two shoppers typing "mask": the one who likes face care gets the face mask first.
    add_event(catalog, "view", "Argan shampoo", session="hair-fan")
    alice = search.search("mask", Audience(user=catalog.users["alice"]), Options(explain=True))
    hair_fan = search.search("mask", Audience(session_id="hair-fan"), Options(explain=True))
    assert catalog.titles(alice.ids)[0] == "Clay face mask"
    assert catalog.titles(hair_fan.ids)[0] == "Hair mask repair"
    assert alice.items[0][1].reason == "Matches “mask”"


def test_a_word_the_query_excludes_is_excluded_from_its_meaning_too(catalog, model):
    found = catalog.titles(search.search("shampoo -dry", Audience(), Options()).ids)
    # The dry shampoo is near the argan shampoo's meaning, but the query said no.
    assert found[0] == "Argan shampoo" and "Dry shampoo spray" not in found
    assert {"Keratin conditioner", "Hair mask repair"} <= set(found)


def test_a_longer_word_sharing_letters_is_close_not_a_match_and_comes_after_the_meaning(catalog, model):
    hair = catalog.products["Argan shampoo"]
    Product.objects.create(
        title="Argano lip tint", slug="argano", category=hair.category, store=hair.store, price=5, stock=5
    )
    index_products()
    result = search.search("argan", Audience(), Options(explain=True))
    reasons = {product.title: rec.reason for product, rec in result.items}
    order = list(reasons)
    assert order[0] == "Argan shampoo" and reasons["Argan shampoo"] == "Matches “argan”"
    assert reasons["Keratin conditioner"] == "Related to “argan”"
    assert reasons["Argano lip tint"] == "Close to “argan”"
    # Hair products like the argan shampoo first, then the near spelling.
    assert all(order.index(title) < order.index("Argano lip tint") for title in TITLES["Hair"])


def test_what_a_query_finds_is_shared_by_visitors_and_only_rescored_per_visitor(catalog, model):
    """The keyword and semantic part of a search is cached per query; a second visitor's
    search of it reads only their own taste, and a new event of theirs still re-orders it."""
    search.search("Mask", Audience(user=catalog.users["alice"]), Options())
    with CaptureQueriesContext(connection) as executed:
        fan = search.search("mask", Audience(session_id="fan"), Options())
    assert not [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]
    # No taste yet: keyword order (the two titles match alike; the first indexed comes first).
    assert catalog.titles(fan.ids)[:2] == ["Hair mask repair", "Clay face mask"]
    add_event(catalog, "view", "Vitamin C serum", session="fan")
    assert catalog.titles(search.search("mask", Audience(session_id="fan"), Options()).ids)[0] == (
        "Clay face mask"
    )


def test_a_querys_matches_are_kept_in_the_process_as_they_are(catalog, model, settings, monkeypatch):
    """No copy per request (unpickling them was a seventh of a search's CPU), for
    SEARCH_CACHE_SECONDS (not the lists' SERVING_CACHE_SECONDS), per query, model version and
    pool length."""
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_CACHE_SECONDS": 0}
    alice = Audience(user=catalog.users["alice"])
    search.search("mask", alice, Options())
    (kept,) = search.kept_matches._entries.values()
    search.search("MASK", Audience(session_id="other"), Options())
    assert len(search.kept_matches) == 1 and next(iter(search.kept_matches._entries.values())) is kept
    search.search("mask", alice, Options(limit=3))  # a shorter pool: its own entry
    assert len(search.kept_matches) == 2

    seconds = rec_settings.SEARCH_CACHE_SECONDS
    later, wall = cache_module.time.monotonic() + 2 * seconds + 1, cache_module.time.time() + 2 * seconds + 1
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: later)
    monkeypatch.setattr(cache_module.time, "time", lambda: wall)  # the shared copy is as old
    with CaptureQueriesContext(connection) as executed:
        search.search("mask", alice, Options())
    assert [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]  # long expired

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SEARCH_CACHE_SECONDS": 0}
    with CaptureQueriesContext(connection) as executed:
        search.search("mask", alice, Options())
    assert [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]  # not kept
    assert len(search.kept_matches) == 0


@pytest.mark.django_db(transaction=True)  # the refresh thread reads through its own connection
def test_an_expired_querys_matches_are_served_while_a_thread_recomputes_them(catalog, model, monkeypatch):
    """Stale-while-revalidate: the read after expiry answers at once from the old matches;
    the process's refresh thread runs the keyword search and keeps new ones."""

    def alice():  # a new page each time: nothing shown on it yet
        return Audience(user=catalog.users["alice"])

    first = search.search("mask", alice(), Options())
    ((_, kept),) = search.kept_matches._entries.values()
    seconds = rec_settings.SEARCH_CACHE_SECONDS
    later, wall = cache_module.time.monotonic() + seconds + 1, cache_module.time.time() + seconds + 1
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: later)
    monkeypatch.setattr(cache_module.time, "time", lambda: wall)  # the shared copy expired too
    with CaptureQueriesContext(connection) as executed:
        stale = search.search("mask", alice(), Options())
    assert not [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]
    assert stale.ids == first.ids
    assert cache_module.wait_for_refreshes()
    ((_, refreshed),) = search.kept_matches._entries.values()
    assert refreshed is not kept and refreshed.ids == kept.ids
    assert search.search("mask", alice(), Options()).ids == first.ids


def test_a_process_without_a_querys_matches_takes_the_copy_another_process_shared(
    catalog, model, monkeypatch
):
    """A restarted process (its own cache empty) reads the matches that another process put in
    Django's cache instead of running the keyword search, and they expire when the first
    process's do: the lifetime runs from when they were computed."""
    alice = Audience(user=catalog.users["alice"])
    first = search.search("mask", alice, Options())
    ((computed_until, _),) = search.kept_matches._entries.values()
    search.kept_matches.clear()  # another process, or this one restarted

    seconds = rec_settings.SEARCH_CACHE_SECONDS
    wall = cache_module.time.time() + seconds / 2  # half its lifetime later
    monkeypatch.setattr(cache_module.time, "time", lambda: wall)
    with CaptureQueriesContext(connection) as executed:
        again = search.search("mask", Audience(user=catalog.users["alice"]), Options())
    assert not [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]
    assert again.ids == first.ids
    ((copied_until, _),) = search.kept_matches._entries.values()
    assert copied_until == pytest.approx(computed_until - seconds / 2, abs=1.0)

    search.kept_matches.clear()
    wall += seconds  # the shared copy is past its lifetime: computed anew
    with CaptureQueriesContext(connection) as executed:
        assert search.search("mask", Audience(user=catalog.users["alice"]), Options()).ids == first.ids
    assert [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]


def test_a_querys_matches_travel_between_processes_through_redis(catalog, model, redis_cache):
    alice = Audience(user=catalog.users["alice"])
    first = search.search("mask", alice, Options())
    ((_, computed),) = search.kept_matches._entries.values()
    search.kept_matches.clear()
    with CaptureQueriesContext(connection) as executed:
        again = search.search("mask", Audience(user=catalog.users["alice"]), Options())
    assert not [q for q in executed.captured_queries if "websearch_to_tsquery" in q["sql"]]
    assert again.ids == first.ids
    ((_, copied),) = search.kept_matches._entries.values()
    assert copied is not computed and copied.ids == computed.ids
    assert (copied.scores == computed.scores).all() and (copied.units == computed.units).all()


def test_search_and_lists_answer_when_djangos_cache_is_down(catalog, model, settings, caplog):
    """The cache is an optimisation: with Redis unreachable the answers are computed, the same
    as with a cache, and the failure logged, nothing raised."""

    def answers() -> tuple[list[str], list[str]]:
        alice = Audience(user=catalog.users["alice"])
        return search.search("mask", alice, Options()).ids, products.trending(Audience(), Options()).ids

    with_cache = answers()
    settings.CACHES = UNREACHABLE_CACHES  # clears the process caches too
    assert answers() == with_cache and with_cache[0] and with_cache[1]
    assert "Django's cache could not be read (ConnectionError" in caplog.text
    assert "Django's cache could not be written (ConnectionError" in caplog.text


def test_lists_are_kept_in_the_cache_that_serving_cache_alias_names(catalog, model, settings):
    """The shop keeps lists in each process ("serving") while search matches are shared
    through "default"; pointing the setting at "default" moves the lists there."""
    lists_cache, shared_cache = caches["serving"], caches["default"]
    products.trending(Audience(), Options())
    assert lists_cache._cache and not shared_cache._cache  # LocMemCache's own store
    search.search("mask", Audience(), Options())
    assert any(key.startswith(":1:recommendations:search:") for key in shared_cache._cache)

    clear_all_caches()
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_CACHE_ALIAS": "default"}
    products.trending(Audience(), Options())
    assert shared_cache._cache and not lists_cache._cache


def test_a_failed_refresh_keeps_the_old_value_and_a_clear_wins_over_a_refresh(monkeypatch, caplog):
    kept = ProcessCache(size=4)
    assert kept.get("k", lambda: "first") == "first"
    later = cache_module.time.monotonic() + rec_settings.SERVING_CACHE_SECONDS + 1
    monkeypatch.setattr(cache_module.time, "monotonic", lambda: later)

    def broken():
        raise RuntimeError("database down")

    assert kept.get("k", broken) == "first"  # stale: answered at once, refreshed in the background
    assert cache_module.wait_for_refreshes()
    assert "Recomputing a kept value failed" in caplog.text

    gate = threading.Event()

    def slow():
        gate.wait(10)
        return "second"

    assert kept.get("k", slow) == "first"  # the failure freed the key: a new refresh starts
    kept.clear()  # e.g. the settings changed while it ran
    gate.set()
    assert cache_module.wait_for_refreshes()
    assert len(kept) == 0  # what the refresh computed under the old settings was not kept
    assert kept.get("k", lambda: "third") == "third"


def test_the_process_cache_is_bounded_and_off_without_seconds(settings):
    kept = ProcessCache(size=2)
    for key in "abc":
        assert kept.get(key, lambda key=key: key.upper()) == key.upper()
    assert list(kept._entries) == ["b", "c"]  # the least recently used went first
    assert kept.get("b", lambda: "computed again") == "B"
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_CACHE_SECONDS": 0}
    assert len(kept) == 0  # a settings change empties it
    assert kept.get("b", lambda: "computed") == "computed" and len(kept) == 0


def test_manager_and_helper_return_querysets_in_order(catalog, model):
    manager = Product.recommendations  # the demo shop attaches the manager to its model
    assert isinstance(manager, RecommendationManager) and Product._default_manager is Product.objects
    alice = catalog.users["alice"]
    queryset = manager.for_user(alice, limit=3)
    assert isinstance(queryset, QuerySet)
    assert set(catalog.titles(p.pk for p in queryset)) <= set(TITLES["Face"])
    assert list(for_user(alice, limit=3)) == list(queryset)
    similar = manager.similar_to(catalog.products["Argan shampoo"], limit=3)
    assert set(catalog.titles(p.pk for p in similar)) == set(TITLES["Hair"]) - {"Argan shampoo"}
    # A primary key names the product as the object does (the template tags take either).
    assert list(manager.similar_to(catalog.products["Argan shampoo"].pk, limit=3)) == list(similar)
    ranked = manager.rerank([catalog.products["Argan shampoo"], catalog.products["Clay face mask"]], alice)
    assert [p.title for p in ranked] == ["Clay face mask", "Argan shampoo"]
    assert [p.title for p in ranked.filter(price__gt=10)] == ["Clay face mask"]
    assert manager.search("nail polish").first().title == "Red nail polish"
    # An anonymous visitor's search follows their session's taste.
    add_event(catalog, "view", "Argan shampoo", session="hair-fan")
    assert manager.search("mask", session_id="hair-fan").first().title == "Hair mask repair"
    for user in ("alice", "bob"):
        add_event(catalog, "purchase", "Red nail polish", user=user)
        add_event(catalog, "purchase", "Matte top coat", user=user)
    refresh_statistics()
    assert manager.bought_with(catalog.products["Red nail polish"], limit=1).get().title == "Matte top coat"
    assert (
        manager.bought_with(catalog.products["Red nail polish"].pk, limit=1).get().title == "Matte top coat"
    )
    assert [p.title for p in manager.trending(category="Nails", limit=2)] == [
        "Matte top coat",
        "Red nail polish",
    ]


def test_history_older_than_the_windows_is_named_and_served_once_they_reach_it(catalog, settings):
    """An import of past years: popularity counts back from now, so the lists stay empty and
    `refresh_serving` says why; widened windows serve that history (power() underflowed)."""
    from io import StringIO

    from django.core.management import call_command

    for user in ("alice", "bob"):
        add_event(catalog, "purchase", "Red nail polish", user=user, ago=dt.timedelta(days=4000))
        add_event(catalog, "purchase", "Matte top coat", user=user, ago=dt.timedelta(days=4000))
    out = StringIO()
    call_command("refresh_serving", "--skip-index", stdout=out)
    assert "Popularity: 0 products" in out.getvalue()
    assert "No event of the last 180 days (the newest is of " in out.getvalue()
    assert 'RECOMMENDATIONS["POPULAR_WINDOW_DAYS"]' in out.getvalue()
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "POPULAR_WINDOW_DAYS": 5000,
        "TRENDING_WINDOW_DAYS": 5000,
    }
    out = StringIO()
    call_command("refresh_serving", "--skip-index", stdout=out)
    assert "Popularity: 2 products; pairs: 2." in out.getvalue() and "No event" not in out.getvalue()
    assert [p.title for p in Product.recommendations.bought_with(catalog.products["Red nail polish"])][
        :1
    ] == ["Matte top coat"]


def test_statistics_refresh_scores_and_pairs(catalog):
    for user in ("alice", "bob"):
        add_event(catalog, "purchase", "Argan shampoo", user=user)
        add_event(catalog, "purchase", "Keratin conditioner", user=user)
        add_event(catalog, "view", "Cuticle oil", session=f"{user}-s")
        add_event(catalog, "view", "Matte top coat", session=f"{user}-s")
    counts = refresh_statistics()
    assert counts == {"popularity": 4, "pairs": ProductPair.objects.count()}
    shampoo = ProductPopularity.objects.get(product_id=catalog.id("Argan shampoo"))
    assert shampoo.categories == ["Beauty", "Hair"] and shampoo.buyers == 2 and shampoo.repeat_rate == 0
    assert shampoo.trending_score == pytest.approx(2 * 5.0, rel=0.01)  # two purchases of weight 5, fresh
    pair = ProductPair.objects.get(kind=PairKind.BOUGHT, product_id=catalog.id("Argan shampoo"))
    assert (
        pair.other_id == catalog.id("Keratin conditioner")
        and pair.count == 2
        and pair.score == pytest.approx(1)
    )
    assert ProductPair.objects.filter(kind=PairKind.VIEWED).count() == 2
    refresh_statistics()  # a rebuild replaces, never duplicates
    assert ProductPopularity.objects.count() == 4


def test_search_index_follows_the_catalogue(catalog):
    product = catalog.products["Cuticle oil"]
    product.title = "Cuticle balm"
    product.save()
    gone = catalog.products["Matte top coat"]
    gone_id = str(gone.pk)
    gone.delete()
    assert index_products([str(product.pk), gone_id]) == 1
    assert ProductDocument.objects.get(product_id=str(product.pk)).title == "Cuticle balm"
    assert not ProductDocument.objects.filter(product_id=gone_id).exists()
    heard = []
    assert index_products(progress=Progress(listeners=(lambda *a: heard.append(a),))) == 11
    assert ProductDocument.objects.count() == 11 and heard == [("search index", 11, 11)]


def test_refresh_serving_command(catalog):
    from io import StringIO

    from django.core.management import call_command

    from recommendations.management.commands.refresh_serving import Command as RefreshServing

    ProductDocument.objects.all().delete()
    add_event(catalog, "purchase", "Cuticle oil", session="x")
    old = products.trending(Audience(), Options())
    products.trending(Audience(), Options())
    ServedRecommendation.objects.filter(pk=old.recommendation_id).update(
        created_at=timezone.now() - dt.timedelta(days=31)
    )
    out = StringIO()
    call_command("refresh_serving", stdout=out)
    assert "Search index: 12 products." in out.getvalue() and "Popularity: 1 products" in out.getvalue()
    assert ProductDocument.objects.count() == 12 and ProductPopularity.objects.count() == 1
    assert "Served lists pruned: 1." in out.getvalue() and ServedRecommendation.objects.count() == 1
    assert "search index" in out.getvalue() and "serving statistics" in out.getvalue()  # progress bars
    usage = " ".join(RefreshServing().create_parser("manage.py", "refresh_serving").format_help().split())
    assert "delete served lists older than SERVED_RETENTION_DAYS" in usage  # what it deletes, said up front
