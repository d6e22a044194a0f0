"""Business rules every list goes through, and the cost of the hot path."""

import os
import pickle
import threading
import time

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations.models import Event, ProductVector, ServedRecommendation
from recommendations.serving import attribution, products
from recommendations.serving.rules import finalize, rules_for
from recommendations.serving.statistics import refresh_statistics
from recommendations.serving.types import Audience, Candidate, Kind, Options
from recommendations.vectors import queries
from shop.models import Product, Store
from tests.serving.conftest import TITLES, add_event

pytestmark = pytest.mark.django_db


def no_caps(settings, **rules):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"default": {"max_per_store": None, **rules}},
    }


def hair_for(catalog, options=Options(limit=10)):
    """A session that viewed the argan shampoo: its taste points at hair care."""
    add_event(catalog, "view", "Argan shampoo", session="hair")
    return catalog.titles(products.for_you(Audience(session_id="hair"), options).ids)


def test_only_active_products_in_stock(catalog, model, settings):
    no_caps(settings)
    Product.objects.filter(title="Keratin conditioner").update(stock=0)
    Product.objects.filter(title="Hair mask repair").update(is_active=False)
    found = hair_for(catalog)
    assert found[0] == "Dry shampoo spray"
    assert "Keratin conditioner" not in found and "Hair mask repair" not in found


def test_already_bought_is_excluded_per_type(catalog, model, settings):
    no_caps(settings)
    add_event(catalog, "purchase", "Keratin conditioner", session="hair")
    add_event(catalog, "view", "Keratin conditioner", session="hair")
    assert "Keratin conditioner" not in hair_for(catalog)
    recent = products.recently_viewed(Audience(session_id="hair"), Options())
    assert "Keratin conditioner" in catalog.titles(recent.ids)  # recently viewed keeps bought ones

    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"default": {"max_per_store": None}, "similar": {"exclude_purchased": True}},
    }
    similar = products.similar(catalog.id("Argan shampoo"), Audience(session_id="hair"), Options())
    assert "Keratin conditioner" not in catalog.titles(similar.ids)
    assert rules_for("similar")["exclude_purchased"] and rules_for("rerank")["exclude_purchased"] is False


def test_ids_in_the_request_are_excluded(catalog, model, settings):
    no_caps(settings)
    excluded = frozenset(catalog.ids("Keratin conditioner", "Hair mask repair"))
    found = hair_for(catalog, Options(exclude=excluded))
    assert found[0] == "Dry shampoo spray" and not set(catalog.titles(excluded)) & set(found)


def test_a_store_list_shows_only_what_the_host_says_is_in_that_store(catalog, model):
    """The host's table decides, not the engine's search index: a product moved to another
    store leaves the list at once, before the index catches up."""
    hair = catalog.stores["Hair"]
    moved = Product.objects.get(title="Argan shampoo")
    Product.objects.filter(pk=moved.pk).update(store=catalog.stores["Face"])
    found = products.store_products(str(hair.pk), Audience(session_id="x"), Options(limit=20))
    assert "Argan shampoo" not in catalog.titles(found.ids)
    assert set(catalog.titles(found.ids)) == set(TITLES["Hair"]) - {"Argan shampoo"}
    # The store's id as a visitor may type it ("007" for 7) names the same store.
    padded = products.store_products(f"00{hair.pk}", Audience(session_id="x"), Options(limit=20))
    assert padded.ids == found.ids


def test_at_most_n_per_store_and_per_category(catalog, model, settings):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {
            "default": {"max_per_store": 2},
            "trending": {"max_per_store": None, "max_per_category": 1},
        },
    }
    found = hair_for(catalog)
    category = {t: c for c, ts in TITLES.items() for t in ts}  # each category is one store
    # Two of each store first; the caps order the list, so the held-back ones complete it.
    assert sorted(category[t] for t in found[:6]) == sorted(list(TITLES) * 2)
    assert found[:2] == ["Keratin conditioner", "Hair mask repair"] and found[6] == "Dry shampoo spray"
    assert len(found) == 10
    for title in catalog.products:
        add_event(catalog, "view", title, session="everyone")
    refresh_statistics()
    trending = catalog.titles(products.trending(Audience(), Options(limit=5)).ids)
    # One of each category first; the caps order the list, so it is still five long.
    assert {category[t] for t in trending[:3]} == set(TITLES) and len(trending) == 5


def test_equal_scores_come_in_key_order_with_numeric_keys_by_value(catalog, model):
    """Two products with one vector: 999999 comes before 1000000 from the k-NN read and in the
    list, whichever order the index returned them in ("1000000" sorts first as text)."""
    hair = catalog.products["Argan shampoo"]
    twins = [
        Product.objects.create(
            pk=pk,
            title=f"Twin {pk}",
            slug=f"twin-{pk}",
            category=hair.category,
            store=hair.store,
            price=5,
            stock=5,
        )
        for pk in (1_000_000, 999_999)
    ]
    ProductVector.objects.bulk_create(
        ProductVector(model_version=model, product_id=str(twin.pk), embedding=[0, 0, 0, 5.0])
        for twin in twins
    )
    assert [pid for pid, _ in queries.nearest_products([0, 0, 0, 1], 2, model)] == ["999999", "1000000"]
    tied = [Candidate("1000000", 1.0, "test", ""), Candidate("999999", 1.0, "test", "")]
    assert finalize(Kind.FOR_YOU, tied, Audience(), Options()).ids == ["999999", "1000000"]


def test_mmr_trades_relevance_for_novelty(catalog, model, settings):
    # Without MMR the three hair products come first; with a low lambda other categories mix in.
    no_caps(settings)
    assert set(hair_for(catalog, Options(limit=3))) <= set(TITLES["Hair"])
    no_caps(settings, mmr_lambda=0.3)
    found = products.for_you(Audience(session_id="hair"), Options(limit=3))
    assert len({catalog.title(pid) in TITLES["Hair"] for pid in found.ids}) == 2


def test_boost_and_bury_rules(catalog, model, settings):
    no_caps(settings)
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "BOOST_RULES": [
            {"filter": {"title": "Dry shampoo spray"}, "factor": 0.01, "types": ["for_you"]},
            {"filter": {"brand": "NailsCo"}, "factor": 10},
            {"filter": {"title": "Hair mask repair"}, "factor": 0},
        ],
    }
    found = hair_for(catalog)
    first_nails = min(found.index(t) for t in TITLES["Nails"])
    assert first_nails < min(found.index(t) for t in TITLES["Face"])  # boosted over equally close ones
    assert "Hair mask repair" not in found  # factor 0 removes
    assert found.index("Dry shampoo spray") > found.index("Keratin conditioner")  # buried
    similar = catalog.titles(products.similar(catalog.id("Argan shampoo"), Audience(), Options()).ids)
    assert "Dry shampoo spray" in similar[:2]  # the bury rule is limited to for_you


def test_every_list_is_recorded_once_with_its_id(catalog, model):
    result = products.trending(Audience(user=catalog.users["bob"], session_id="s"), Options())
    served = ServedRecommendation.objects.get()
    assert served.pk == result.recommendation_id and served.kind == "trending"
    assert served.product_ids == result.ids and served.user == catalog.users["bob"]
    assert all(rec.recommendation_id == served.pk for _, rec in result.items)
    assert [rec.position for _, rec in result.items] == list(range(1, len(result.ids) + 1))


def test_hot_path_query_count(catalog, model, django_assert_max_num_queries):
    alice = catalog.users["alice"]
    add_event(catalog, "view", "Red nail polish", user="alice")
    # A process serving traffic knows the active version and the live experiment (each read
    # again every few seconds); another visitor's request has loaded them.
    products.for_you(Audience(session_id="someone-else"), Options(limit=2))
    # Opt-out flag, history and purchases (one UNION ALL), user vector, vectors of fresh history
    # items, k-NN (a transaction with two SET LOCALs: 5), availability of the candidates, the
    # shown products, served INSERT. Fallbacks (trending, newest) run only when the model
    # proposes too few; neighbour vectors are read only to explain.
    with django_assert_max_num_queries(11):
        first = products.for_you(Audience(user=alice), Options(limit=2))
    with django_assert_max_num_queries(4):  # cached: history+purchases, availability, products, INSERT
        again = products.for_you(Audience(user=alice), Options(limit=2))
    assert again.ids == first.ids and again.recommendation_id != first.recommendation_id
    # A new event changes the list but not the stored user vector, which stays cached. (In a
    # test's transaction the k-NN search settings cost a statement per query, not per connection.)
    add_event(catalog, "view", "Matte top coat", user="alice")
    with django_assert_max_num_queries(7):  # history, its vectors, k-NN, availability, products, INSERT
        products.for_you(Audience(user=alice), Options(limit=2))


def test_blocks_of_a_page_share_the_visitors_reads(catalog, model):
    """Every block of a page needs the visitor's history and taste; they are read once per page."""
    audience = Audience(user=catalog.users["alice"])
    add_event(catalog, "view", "Red nail polish", user="alice")
    products.for_you(audience, Options(limit=2))
    with CaptureQueriesContext(connection) as captured:
        result = products.store_products(str(catalog.stores["Nails"].pk), audience, Options(limit=2))
    assert result.items[0][1].source == "realtime"
    statements = [query["sql"] for query in captured.captured_queries]
    assert not [sql for sql in statements if "recommendations_uservector" in sql]  # the stored vector
    assert not [sql for sql in statements if '"recommendations_event"."user_id"' in sql]  # the history
    vectors = [sql for sql in statements if "recommendations_productvector" in sql]
    assert len(vectors) == 1 and "ORDER BY" in vectors[0]  # the k-NN query; not the history's vectors


def record_one(**overrides):
    from recommendations.serving.attribution import record_served

    return record_served(
        **{
            "kind": "trending",
            "source": "trending",
            "audience": Audience(session_id="s" * 80),  # longer than the column: cut, not an error
            "product_ids": ["3", "1"],
            "scores": [0.5, 0.25],
            "model_version_id": None,
            "context": {"category": "Hair", "sources": ["trending", "new"]},
            **overrides,
        }
    )


def test_served_lists_are_queued_and_written_in_batches_by_one_thread(
    transactional_db, django_assert_num_queries
):
    from recommendations.serving.attribution import ServedWriter, flush_served

    with django_assert_num_queries(0):  # the request writes nothing itself
        ids = [record_one(product_ids=[str(i)]) for i in range(5)]
    writer = ServedWriter.for_this_process()
    assert writer.thread.is_alive() and writer.thread is not threading.current_thread()
    assert flush_served()
    assert set(ServedRecommendation.objects.values_list("pk", flat=True)) == set(ids)
    served = ServedRecommendation.objects.get(pk=ids[3])
    assert served.product_ids == ["3"] and served.scores == [0.5, 0.25] and served.session_id == "s" * 64
    assert served.context["sources"] == ["trending", "new"] and served.created_at is not None


def _other_backends() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        return {pid for (pid,) in cursor.fetchall()}


def test_the_writer_keeps_its_connection_while_lists_come_and_closes_it_when_idle(transactional_db, settings):
    from recommendations.serving.attribution import flush_served

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVED_WRITE_DELAY_SECONDS": 0.1}
    before = _other_backends()
    record_one()
    assert flush_served()
    writer_backend = _other_backends() - before
    assert len(writer_backend) == 1
    record_one()
    assert flush_served()
    assert writer_backend <= _other_backends()  # the same connection wrote the next batch
    deadline = time.monotonic() + 5
    while writer_backend <= _other_backends() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not writer_backend & _other_backends()


def test_a_failed_batch_is_retried_and_then_dropped_with_an_error(transactional_db, caplog, monkeypatch):
    from recommendations.serving import attribution

    monkeypatch.setattr(attribution.time, "sleep", lambda seconds: None)
    monkeypatch.setattr(attribution, "_copy_sql", lambda: "COPY no_such_table (id) FROM STDIN")
    record_one()
    assert attribution.flush_served()
    assert "Dropped 1 served lists after 3 failed writes" in caplog.text
    monkeypatch.undo()
    kept = record_one()  # the writer carries on with the next batch
    assert attribution.flush_served() and ServedRecommendation.objects.filter(pk=kept).exists()


def test_a_list_naming_a_deleted_user_does_not_cost_the_rest_of_its_batch(transactional_db, caplog):
    from django.contrib.auth import get_user_model

    from recommendations.serving.attribution import flush_served

    kept = record_one()
    gone = get_user_model()(pk=987654, username="deleted before the batch was written")
    dropped = record_one(audience=Audience(user=gone))
    assert flush_served()
    assert ServedRecommendation.objects.filter(pk=kept).exists()
    assert not ServedRecommendation.objects.filter(pk=dropped).exists()
    assert "Dropped 1 served list(s) naming a user or model version deleted since" in caplog.text


def test_served_lists_can_be_written_in_the_request_in_one_asynchronous_statement(
    transactional_db, django_assert_num_queries, settings
):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVED_WRITE_DELAY_SECONDS": 0}
    with django_assert_num_queries(1):
        rec_id = record_one()
    served = ServedRecommendation.objects.get(pk=rec_id)
    assert served.product_ids == ["3", "1"] and served.scores == [0.5, 0.25]
    assert served.context["sources"] == ["trending", "new"] and served.session_id == "s" * 64
    assert served.created_at is not None and served.user is None
    with connection.cursor() as cursor:  # the setting was local to that statement's transaction
        cursor.execute("SHOW synchronous_commit")
        assert cursor.fetchone()[0] == "on"


def test_a_served_row_names_the_tables_columns_in_order():
    from recommendations.serving.attribution import FIELDS, ServedRow

    assert ServedRow._fields == tuple(field.attname for field in FIELDS)


def test_cached_candidates_come_back_whole_with_their_vectors():
    """Cached lists pickle a candidate's vector as its bytes (cheaper than numpy's form)."""
    kept = [
        Candidate(
            "1", 0.5, "vector", "Similar to {title}", about="7", embedding=np.arange(4, dtype=np.float32)
        ),
        Candidate(
            "2", 0.25, "realtime", "Picked for you", embedding=np.array([0.1, -2.0], dtype=np.float64), tier=1
        ),
        Candidate("3", 0.0, "popular"),
        Candidate("4", 0.1, "odd", embedding=np.ones((2, 2))),  # not a vector: numpy's own form
    ]
    back = pickle.loads(pickle.dumps(kept, pickle.HIGHEST_PROTOCOL))
    for original, copy in zip(kept, back, strict=True):
        assert (copy.product_id, copy.score, copy.source, copy.reason, copy.about, copy.tier) == (
            original.product_id,
            original.score,
            original.source,
            original.reason,
            original.about,
            original.tier,
        )
        if original.embedding is None:
            assert copy.embedding is None
        else:
            assert copy.embedding.dtype == original.embedding.dtype
            assert np.array_equal(copy.embedding, original.embedding)


def test_recommendation_ids_are_unique_across_threads_and_forks():
    """Ids come from a per-thread pool of random bytes: no two threads, and no forked child
    (a web or Celery worker), may hand out the same ones."""
    ids = [attribution.new_recommendation_id() for _ in range(1000)]  # several pools
    others: list[str] = []
    thread = threading.Thread(
        target=lambda: others.extend(attribution.new_recommendation_id() for _ in range(500))
    )
    thread.start()
    thread.join()
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's part
        os.write(write_end, attribution.new_recommendation_id().encode())
        os._exit(0)
    os.waitpid(child, 0)
    from_child = os.read(read_end, 64).decode()
    os.close(read_end)
    os.close(write_end)
    parents_next = attribution.new_recommendation_id()
    everything = [*ids, *others, from_child, parents_next]
    assert all(len(i) == 20 and int(i, 16) >= 0 for i in everything)
    assert len(set(everything)) == len(everything)


def test_thread_owners_are_made_once_per_process_and_again_in_a_forked_child():
    from recommendations.serving.process import PerProcess

    class Owner(PerProcess):
        pass

    class Other(PerProcess):
        pass

    assert Owner.running() is None
    owner = Owner.for_this_process()
    assert Owner.for_this_process() is owner and Owner.running() is owner
    assert Other.running() is None and Other.for_this_process() is not owner
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's part
        fresh = Owner.running() is None and Owner.for_this_process() is not owner
        os.write(write_end, b"fresh" if fresh else b"inherited")
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read_end, 16) == b"fresh"
    os.close(read_end)
    os.close(write_end)
    assert Owner.for_this_process() is owner


def test_a_list_the_rules_leave_short_is_filled_from_the_backfill(catalog, settings):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"default": {"max_per_store": 2}},
    }
    hair = [
        Candidate(catalog.id(title), 1.0 - i / 10, "vector", "") for i, title in enumerate(TITLES["Hair"])
    ]
    face, nails = catalog.id("Vitamin C serum"), catalog.id("Red nail polish")
    backfill = [Candidate(face, 5.0, "trending", ""), Candidate(hair[3].product_id, 9.0, "trending", "")]
    backfill.append(Candidate(nails, 4.0, "trending", ""))
    options = Options(limit=4)

    # Two per store: the held-back hair products complete the list, before any backfill.
    hair_ids = [c.product_id for c in hair]

    def unused():
        raise AssertionError("a list its own candidates fill needs no backfill")

    assert finalize(Kind.FOR_YOU, hair, Audience(), options, backfill=unused).ids == hair_ids
    # Longer than every proposed candidate: the backfill comes after them, whatever its
    # scores, and a product already proposed comes once.
    longer = finalize(Kind.FOR_YOU, hair, Audience(), Options(limit=6), backfill=lambda: backfill)
    assert longer.ids == [*hair_ids, face, nails]
    assert [c.tier for c in backfill] == [0, 0, 0]  # the (possibly cached) backfill is not changed

    def unused():
        raise AssertionError("a full list needs no backfill")

    assert len(finalize(Kind.FOR_YOU, hair, Audience(), Options(limit=2), backfill=unused).ids) == 2


@pytest.mark.parametrize("cap", [1, None])  # None: the built-in cap (3)
def test_the_backfill_counts_what_the_list_already_holds_against_the_caps(catalog, settings, cap):
    """One hair product is proposed; the backfill's best are the other hair products. The
    cap counts the one already on the list, so the face and nail products the backfill holds
    come before the hair products beyond the cap."""
    if cap:
        settings.RECOMMENDATIONS = {
            **settings.RECOMMENDATIONS,
            "SERVING_RULES": {"default": {"max_per_store": cap}},
        }
    cap = cap or rules_for(Kind.FOR_YOU)["max_per_store"]
    hair = catalog.ids(*TITLES["Hair"])
    backfill = [Candidate(pid, 9.0 - i, "trending", "") for i, pid in enumerate(hair[1:])]
    backfill += [Candidate(catalog.id("Vitamin C serum"), 1.0, "trending", "")]
    backfill += [Candidate(catalog.id("Red nail polish"), 0.5, "trending", "")]
    proposed = [Candidate(hair[0], 1.0, "vector", "")]
    found = finalize(
        Kind.FOR_YOU, proposed, Audience(), Options(limit=cap + 2), backfill=lambda: backfill
    ).ids
    assert found == [*hair[:cap], catalog.id("Vitamin C serum"), catalog.id("Red nail polish")]


def test_recommended_for_you_is_filled_with_trending_when_its_own_candidates_run_out(
    catalog, model, settings
):
    """The visitor's nearest products are plenty before the rules, so trending is not asked
    for; one per store puts one of each store first, the held-back ones follow, and only then
    trending's product of a fourth store completes the list."""
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"default": {"max_per_store": 1}},
    }
    gifts = Store.objects.create(name="Gifts", slug="gifts")
    gift = Product.objects.create(
        title="Gift box", slug="gift-box", category=catalog.products["Argan shampoo"].category, store=gifts,
        price=20, stock=5,
    )  # fmt: skip
    Event.objects.create(
        event_type="purchase",
        session_id="someone",
        product_id=str(gift.pk),
        value=1,
        timestamp=timezone.now(),
    )
    refresh_statistics()
    add_event(catalog, "view", "Argan shampoo", session="hair")
    found = products.for_you(Audience(session_id="hair"), Options(limit=12))
    # The eleven other catalogue products, one of each store first, then the gift box.
    assert len(found.ids) == 12 and found.ids[-1] == str(gift.pk)
    assert len({catalog.products[t].store_id for t in catalog.titles(found.ids[:3])}) == 3
    assert [recommendation.source for _, recommendation in found.cards()][-1] == "trending"


def test_similar_products_are_close_matches_not_a_full_list_padded_with_others(catalog, model, settings):
    argan = catalog.id("Argan shampoo")
    similar = lambda: catalog.titles(products.similar(argan, Audience(), Options(limit=6)).ids)  # noqa: E731
    # The other hair products are the close matches; face and nail care score next to nothing.
    assert sorted(similar()) == sorted(set(TITLES["Hair"]) - {"Argan shampoo"})
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SERVING_RULES": {"similar": {"min_relative_score": None}},
    }
    assert len(similar()) == 6 and not set(similar()) <= set(TITLES["Hair"])
