"""Precomputed lists: built exactly, read instead of an index search, and left aside
whenever they would not give the index's answer."""

import datetime as dt

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recommendations.models import ListKind, PrecomputedList, ProductDocument, ProductVector, UserVector
from recommendations.serving import products
from recommendations.serving.types import Audience, Options
from recommendations.vectors import lists, queries, tuning
from tests.serving.conftest import TITLES, add_event
from tests.state import clear_all_caches

pytestmark = pytest.mark.django_db


def build(version):
    record = lists.build(version)
    queries.clear_cache()  # serving re-reads the active version and its record
    clear_all_caches()  # and computes its answers again rather than reusing those from before
    return record


def knn_statements(captured) -> list[str]:
    """Index searches among the captured statements (cosine or inner-product k-NN)."""
    return [q["sql"] for q in captured.captured_queries if "<=>" in q["sql"] or "<#>" in q["sql"]]


def live_similar(product_id, k, version):
    return sorted(
        (
            (pid, lists.similar_score(cosine, float(title)))
            for pid, cosine, title in queries.similar_products_with_titles(product_id, k, version)
        ),
        key=lambda row: -row[1],
    )


def test_build_ranks_every_product_and_user_exactly(catalog, model):
    record = build(model)
    n = len(catalog.products)
    assert record[ListKind.SIMILAR] == {
        "rows": n,
        "length": n - 1,
        "complete": True,
        "seconds": record[ListKind.SIMILAR]["seconds"],
    }
    assert record[ListKind.FOR_USER]["rows"] == 1 and record[ListKind.FOR_USER]["complete"]
    assert model.vector_search[lists.LISTS] == record
    # Each product's list is what an exact search with the titles finds, scored alike.
    for title in catalog.products:
        pid = catalog.id(title)
        found = lists.similar(pid, n - 1, model)
        expected = live_similar(pid, n - 1, model)
        scores, exact = dict(found), dict(expected)  # ties (other categories) in any order
        assert scores.keys() == exact.keys(), title
        assert np.allclose([scores[p] for p in exact], list(exact.values()))
        assert [s for _, s in found] == sorted(scores.values(), reverse=True)
    # Alice's list: every product by user . item + bias, face care first.
    alice = PrecomputedList.objects.get(kind=ListKind.FOR_USER, key=str(catalog.users["alice"].pk))
    vector = queries.user_vector(catalog.users["alice"].pk, model)
    exact = queries.nearest_products(vector, n, model)
    listed = dict(zip(alice.product_ids, alice.scores, strict=True))
    assert listed.keys() == dict(exact).keys()
    assert np.allclose([listed[pid] for pid, _ in exact], [score for _, score in exact])
    assert alice.scores == sorted(alice.scores, reverse=True)
    assert set(catalog.titles(alice.product_ids[:4])) == set(TITLES["Face"])


@pytest.mark.parametrize(
    "left, right",
    [
        ("Argan shampoo", "argan SHAMPOO!"),
        ("Retinol night serum", "Vitamin C serum"),
        ("Café crème brûlée", "cafe creme"),
        ("中文 标题 测试", "中文标题"),
        ("x_y z-w 12ab", "X Y Z W 12AB"),
        ("Ελληνικά λέξη", "ελληνικα"),
        ("O'Brien's 3-pack", "obrien 3 pack"),
        ("!!!", "Nail polish"),
    ],
)
def test_title_trigrams_score_as_pg_trgm_does(left, right):
    ours = lists.trigrams(left), lists.trigrams(right)
    shared = len(ours[0] & ours[1])
    score = shared / (len(ours[0]) + len(ours[1]) - shared) if all(ours) else 0.0
    with connection.cursor() as cursor:
        cursor.execute("SELECT similarity(%s, %s)", [left, right])
        assert score == pytest.approx(cursor.fetchone()[0], abs=1e-6)


def test_similar_reads_the_list_instead_of_searching(catalog, model):
    audience, options = Audience(), Options(limit=4)
    seed = catalog.id("Argan shampoo")
    searched = products.similar(seed, audience, options).ids
    build(model)
    with CaptureQueriesContext(connection) as captured:
        listed = products.similar(seed, Audience(), options).ids
    assert listed == searched
    assert not knn_statements(captured)
    # Hair care, the other shampoo first (its title shares a word).
    assert catalog.titles(listed)[:3] == ["Dry shampoo spray", "Keratin conditioner", "Hair mask repair"]


def test_for_you_reads_the_users_list_with_their_history(catalog, model):
    alice = catalog.users["alice"]
    add_event(catalog, "purchase", "Clay face mask", user="alice", ago=dt.timedelta(days=30))
    searched = products.for_you(Audience(user=alice), Options(limit=4)).ids
    build(model)
    with CaptureQueriesContext(connection) as captured:
        listed = products.for_you(Audience(user=alice), Options(limit=4)).ids
    assert listed == searched
    assert catalog.id("Clay face mask") not in listed  # bought: still excluded
    assert not knn_statements(captured)


def test_a_fresh_event_moves_the_taste_past_the_list(catalog, model):
    build(model)
    add_event(catalog, "view", "Red nail polish", user="alice")
    with CaptureQueriesContext(connection) as captured:
        result = products.for_you(Audience(user=catalog.users["alice"]), Options(limit=3))
    assert knn_statements(captured)  # the real-time taste is searched for
    assert result.items[0][1].source == "realtime"


def test_a_longer_list_than_built_is_searched_for(catalog, model, settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PRECOMPUTED_LIST_LENGTH": 3}
    record = build(model)
    assert record[ListKind.SIMILAR]["length"] == 3 and not record[ListKind.SIMILAR]["complete"]
    assert lists.similar(catalog.id("Argan shampoo"), 3, model) is not None
    assert lists.similar(catalog.id("Argan shampoo"), 4, model) is None
    with CaptureQueriesContext(connection) as captured:
        products.similar(catalog.id("Argan shampoo"), Audience(), Options(limit=4))
    assert knn_statements(captured)


def test_a_dropped_list_falls_back_to_the_index(catalog, model):
    build(model)
    seed = catalog.id("Argan shampoo")
    assert lists.drop(model, ListKind.SIMILAR, [seed]) == 1
    assert lists.similar(seed, 4, model) is None
    with CaptureQueriesContext(connection) as captured:
        result = products.similar(seed, Audience(), Options(limit=3))
    assert knn_statements(captured)
    assert catalog.titles(result.ids) == ["Dry shampoo spray", "Keratin conditioner", "Hair mask repair"]


def test_too_many_scores_or_length_zero_build_nothing(catalog, model, settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PRECOMPUTED_LIST_MAX_SCORES": 100}
    record = build(model)
    assert record[ListKind.SIMILAR]["rows"] == 0 and "MAX_SCORES" in record[ListKind.SIMILAR]["reason"]
    assert record[ListKind.FOR_USER]["rows"] == 1  # 1 user x 12 products fits
    assert not PrecomputedList.objects.filter(kind=ListKind.SIMILAR).exists()
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PRECOMPUTED_LIST_LENGTH": 0}
    record = build(model)
    assert {built["reason"] for built in record.values()} == {"off"}
    assert not PrecomputedList.objects.exists()
    with CaptureQueriesContext(connection) as captured:
        products.similar(catalog.id("Argan shampoo"), Audience(), Options(limit=3))
    assert knn_statements(captured)


@pytest.mark.parametrize(
    "setting, value", [("PRECOMPUTED_LIST_LENGTH", -1), ("PRECOMPUTED_LIST_MAX_SCORES", "x")]
)
def test_bad_list_settings_are_clear_configuration_errors(catalog, model, settings, setting, value):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, setting: value}
    with pytest.raises(ImproperlyConfigured, match=setting):
        lists.build(model)


def test_lists_are_built_once_with_the_indexes_and_kept_by_retuning(catalog, model):
    UserVector.objects.create(model_version=model, user=catalog.users["bob"], embedding=[1, 0, 0, 0])
    tuning.prepare_search(model)
    built = PrecomputedList.objects.count()
    assert built == len(catalog.products) + 2
    assert lists.build_missing(model) == model.vector_search[lists.LISTS]  # already there
    tuning.tune_searches(model)
    model.refresh_from_db()
    assert lists.has_lists(model, ListKind.FOR_USER) and PrecomputedList.objects.count() == built


@pytest.mark.parametrize("skip_self", [False, True])
def test_ranking_in_blocks_is_exact(monkeypatch, skip_self):
    monkeypatch.setattr(lists, "BLOCK_SCORES", 3 * 40)  # three rows of 40 products a block
    rng = np.random.default_rng(4)
    items = rng.normal(size=(40, 5)).astype(np.float32)
    targets = items if skip_self else rng.normal(size=(10, 5)).astype(np.float32)
    bias = None if skip_self else rng.normal(size=40).astype(np.float32)
    scores = targets @ items.T + (0 if bias is None else bias)
    if skip_self:
        np.fill_diagonal(scores, -np.inf)
    blocks = list(lists.ranked_blocks(targets, items, 6, bias=bias, skip_self=skip_self))
    indices = np.concatenate([found for _, found, _ in blocks])
    ranked = np.concatenate([best for _, _, best in blocks])
    assert [block.start for block, _, _ in blocks] == list(range(0, len(targets), 3))
    assert (indices == np.argsort(-scores, axis=1)[:, :6]).all()
    assert np.allclose(ranked, np.sort(scores, axis=1)[:, ::-1][:, :6])


def clustered_directions(n: int, dimensions: int = 16, centres: int = 25, seed: int = 3) -> np.ndarray:
    """Unit vectors around a few directions, as trained item vectors lie."""
    rng = np.random.default_rng(seed)
    middles = rng.normal(size=(centres, dimensions))
    points = middles[rng.integers(centres, size=n)] + 0.6 * rng.normal(size=(n, dimensions))
    return queries.unit_rows(points).astype(np.float32)


def exact_neighbours(units: np.ndarray, k: int) -> list[set[int]]:
    scores = units @ units.T
    np.fill_diagonal(scores, -np.inf)
    return [set(row) for row in np.argsort(-scores, axis=1)[:, :k].tolist()]


def test_clustered_ranking_finds_the_exact_neighbours_as_it_probes_more():
    units = clustered_directions(2000)
    exact = exact_neighbours(units, 10)
    centroids = lists.spherical_kmeans(units, 45)
    recalls = []
    for probes in (1, 8, 45):
        found: dict[int, list[int]] = {}
        for rows, neighbours, cosines in lists.clustered_blocks(units, 10, centroids, probes):
            assert (np.diff(cosines, axis=1) <= 1e-6).all()  # best first
            found.update(zip(rows.tolist(), neighbours.tolist(), strict=True))
        assert sorted(found) == list(range(2000)) and all(
            row not in found[row] for row in found
        )  # never itself
        recalls.append(sum(len(exact[row] & set(found[row])) for row in found) / (10 * 2000))
    assert recalls[0] < recalls[1] < 1.0 and recalls[1] >= 0.9
    assert recalls[2] == 1.0  # every cluster probed: exact


def test_a_catalogue_over_the_budget_gets_clustered_similar_lists(catalog, model, settings):
    """Past PRECOMPUTED_LIST_MAX_SCORES for an exact ranking, "similar" lists are ranked by
    cluster, probing as many clusters as reach SCORE_SEARCH_RECALL on a sample."""
    units = clustered_directions(900, dimensions=4, centres=12)
    ProductVector.objects.filter(model_version=model).delete()
    ProductVector.objects.bulk_create(
        ProductVector(model_version=model, product_id=str(10_000 + i), embedding=v.tolist())
        for i, v in enumerate(units)
    )
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "PRECOMPUTED_LIST_MAX_SCORES": 400_000,  # 900 x 900 exact scores would be 810,000
        "PRECOMPUTED_LIST_LENGTH": 10,
        "SCORE_SEARCH_RECALL": 0.9,
    }
    record = build(model)[ListKind.SIMILAR]
    assert record["rows"] == 900 and record["exact"] is False and record["clusters"] == 30
    assert record["probes"] < 30 and record["recall"] >= 0.9
    exact = exact_neighbours(units, 10)
    kept = PrecomputedList.objects.filter(model_version=model, kind=ListKind.SIMILAR)
    found = {int(row.key) - 10_000: {int(pid) - 10_000 for pid in row.product_ids} for row in kept}
    assert sum(len(exact[i] & found[i]) for i in found) / 9000 >= 0.85
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "PRECOMPUTED_LIST_MAX_SCORES": 1_000}
    record = build(model)[ListKind.SIMILAR]
    assert record["rows"] == 0 and "MAX_SCORES" in record["reason"]  # even clustered, too many


def test_products_without_a_search_document_are_ranked_with_their_titles_all_the_same(catalog, model, caplog):
    """A catalogue loaded after the search index was built: the lists read those titles
    through the adapter, so they rank as the live query will once the index is refreshed."""
    build(model)
    pid = catalog.id("Argan shampoo")
    with_documents = lists.similar(pid, 5, model)
    ProductDocument.objects.filter(product_id__in=[pid, catalog.id("Dry shampoo spray")]).delete()
    build(model)
    assert lists.similar(pid, 5, model) == with_documents
    assert "2 of 12 products have no search document" in caplog.text
