"""The score index's search length, tuned per version on its own users (`vectors.tuning`)."""

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from django.test.utils import CaptureQueriesContext

from recommendations.models import ModelStatus, ModelVersion
from recommendations.vectors import indexes, queries, tuning, writer

DIMS = 16


def clustered_version(users_between_clusters: bool, n_items=4000, n_users=60, seed=3):
    """Items in 40 tight clusters; users either next to one item or halfway between two clusters."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(40, DIMS))
    items = centres[rng.integers(0, 40, n_items)] + 0.3 * rng.normal(size=(n_items, DIMS))
    if users_between_clusters:
        pairs = rng.integers(0, 40, size=(n_users, 2))
        users = centres[pairs].mean(axis=1)
    else:
        users = items[rng.integers(0, n_items, n_users)] + 0.05 * rng.normal(size=(n_users, DIMS))
    version = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=DIMS)
    writer.write_product_vectors(version, [str(i) for i in range(1, n_items + 1)], items, np.zeros(n_items))
    accounts = get_user_model().objects.bulk_create(
        get_user_model()(username=f"u{i}") for i in range(n_users)
    )
    writer.write_user_vectors(version, [a.pk for a in accounts], users)
    return version, users


def exact_top(version, user, k=10):
    found = queries.product_vectors([str(i) for i in range(1, 5001)], version)
    ranked = sorted(found, key=lambda p: -(float(found[p].embedding @ user) + found[p].bias))
    return set(ranked[:k])


def session_setting(name):
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {name}")
        return cursor.fetchone()[0]


@pytest.mark.django_db
@pytest.mark.parametrize("between, shortest", [(False, True), (True, False)])
def test_hnsw_search_is_as_long_as_the_versions_users_need(settings, between, shortest):
    # 0.99: users between clusters need more than the shortest search for it whatever the
    # graph's random levels (100-200 in repeated builds), users next to an item never do.
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SCORE_INDEX": "hnsw",
        "SCORE_SEARCH_RECALL": 0.99,
    }
    version, users = clustered_version(users_between_clusters=between)
    tuning.prepare_search(version)
    tuned = ModelVersion.objects.get(pk=version.pk).vector_search
    assert tuned["index"] == "hnsw" and tuned["users"] == len(users)
    assert tuned["recall"] >= 0.99
    assert (tuned["ef_search"] == 40) is shortest
    # Serving searches with the tuned length, and finds what the tuning promised.
    version.refresh_from_db()
    hits = [
        len({p for p, _ in queries.nearest_products(u, 10, version=version)} & exact_top(version, u))
        for u in users
    ]
    assert session_setting("hnsw.ef_search") == str(tuned["ef_search"])
    assert np.mean(hits) / 10 >= 0.95


@pytest.mark.django_db
def test_ivfflat_probes_are_tuned_and_never_past_all_lists(settings):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SCORE_INDEX": "ivfflat",
        "SCORE_SEARCH_RECALL": 0.99,
    }
    version, users = clustered_version(users_between_clusters=True)
    tuning.prepare_search(version)
    version.refresh_from_db()
    tuned = version.vector_search
    assert tuned["index"] == "ivfflat" and tuned["recall"] >= 0.99
    assert 1 <= tuned["probes"] <= indexes.ivfflat_lists(4000) == 63
    queries.nearest_products(users[0], 10, version=version)
    assert session_setting("ivfflat.probes") == str(tuned["probes"])


@pytest.mark.django_db
def test_between_two_lengths_of_the_ladder_the_shortest_that_reaches_the_target_is_found(
    settings, monkeypatch
):
    """The ladder doubles (5, 10, ...); a search of 7 lists that is enough is found by halving
    the gap, so serving does not scan 10."""
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SCORE_INDEX": "ivfflat"}
    version, _ = clustered_version(users_between_clusters=True)
    tried = []

    def measure(version, users, exact):
        probes = version.vector_search["probes"]
        tried.append(probes)
        return (0.99 if probes >= 7 else 0.9), float(probes)

    monkeypatch.setattr(tuning, "measure_search", measure)
    tuning.prepare_search(version)
    version.refresh_from_db()
    assert version.vector_search["probes"] == 7 and version.vector_search["recall"] == 0.99
    assert tried == [1, 2, 5, 10, 7, 6]


@pytest.mark.django_db
def test_tuned_once_per_build_and_a_version_without_users_keeps_the_settings(settings):
    version, _ = clustered_version(users_between_clusters=False, n_items=500, n_users=20)
    tuning.prepare_search(version)
    version.refresh_from_db()
    first = version.vector_search
    with CaptureQueriesContext(connection) as executed:
        assert tuning.prepare_search(version) == []  # indexes there and tuned: nothing to do
    assert not [q for q in executed.captured_queries if "random()" in q["sql"]]
    version.refresh_from_db()
    assert version.vector_search == first

    empty = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=DIMS)
    writer.write_product_vectors(empty, ["1", "2", "3"], np.eye(3, DIMS), np.zeros(3))
    tuning.prepare_search(empty)
    empty.refresh_from_db()
    assert {k: v for k, v in empty.vector_search.items() if k not in ("similar", "lists")} == {
        "index": "hnsw",
        "users": 0,
    }
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "HNSW_EF_SEARCH_FOR_USERS": 333}
    queries.nearest_products(np.ones(DIMS), 2, version=empty)
    assert session_setting("hnsw.ef_search") == "333"


@pytest.mark.django_db
def test_exact_ranking_merges_chunks_correctly(monkeypatch):
    version, users = clustered_version(users_between_clusters=True, n_items=300, n_users=5)
    monkeypatch.setattr(tuning, "CHUNK", 7)  # many chunks, the last one shorter than K
    assert tuning._exact_top(version, list(users)) == [exact_top(version, u) for u in users]


@pytest.mark.django_db
def test_a_target_out_of_reach_keeps_the_longest_search_and_says_what_to_try(settings, caplog):
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "SCORE_INDEX": "ivfflat",
        "SCORE_SEARCH_RECALL": 1.01,
    }
    version, _ = clustered_version(users_between_clusters=True, n_items=900, n_users=10)
    with caplog.at_level("WARNING", logger="recommendations.vectors.tuning"):
        tuning.prepare_search(version)
    version.refresh_from_db()
    assert version.vector_search["probes"] == indexes.ivfflat_lists(900) == 30  # every list: exact
    assert version.vector_search["recall"] == 1.0
    assert "try RECOMMENDATIONS['SCORE_INDEX'] = 'hnsw'" in caplog.text


def prepared_with_verdict(settings, monkeypatch, auto: str, ivfflat_better: bool, **version_kwargs):
    """A version prepared with `auto` ("SCORE_INDEX" or "SIMILAR_INDEX") the only setting on
    "auto", every HNSW search counted as long, and the comparison's verdict forced; the
    version and the one (IVFFlat, HNSW) pair of tuned searches that was compared."""
    fixed = {"SCORE_INDEX": "hnsw", "SIMILAR_INDEX": "hnsw", auto: "auto"}
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, **fixed}
    monkeypatch.setattr(tuning, "LONG_EF_SEARCH", 40)
    compared = []
    monkeypatch.setattr(tuning, "_better", lambda new, old: compared.append((new, old)) or ivfflat_better)
    version, _ = clustered_version(**version_kwargs)
    tuning.prepare_search(version)
    version.refresh_from_db()
    [(ivfflat, hnsw)] = compared
    assert (ivfflat["index"], hnsw["index"]) == ("ivfflat", "hnsw")
    return version, ivfflat


@pytest.mark.django_db
@pytest.mark.parametrize("ivfflat_better, kept", [(True, "ivfflat"), (False, "hnsw")])
def test_auto_compares_a_long_hnsw_search_with_ivfflat_and_keeps_the_better(
    settings, monkeypatch, ivfflat_better, kept
):
    version, _ = prepared_with_verdict(
        settings, monkeypatch, "SCORE_INDEX", ivfflat_better, users_between_clusters=True
    )
    assert version.vector_search["index"] == indexes.index_kind(indexes.SCORE_SPEC, version.pk) == kept
    assert version.vector_search["recall"] >= 0.97
    assert all(indexes.existing_indexes(version.pk).values())  # the cosine and store ones too


@pytest.mark.django_db
@pytest.mark.parametrize("ivfflat_better, kept", [(True, "ivfflat"), (False, "hnsw")])
def test_auto_compares_a_long_similar_search_with_ivfflat_and_keeps_the_better(
    settings, monkeypatch, ivfflat_better, kept
):
    version, ivfflat = prepared_with_verdict(
        settings, monkeypatch, "SIMILAR_INDEX", ivfflat_better, users_between_clusters=False
    )
    assert ivfflat["products"] > 0
    similar = version.vector_search["similar"]
    assert similar["index"] == indexes.index_kind(indexes.COSINE_SPEC, version.pk) == kept
    assert indexes.index_kind(indexes.SCORE_SPEC, version.pk) == "hnsw"
    assert similar["recall"] >= 0.97
    # Serving searches the kept index as long as it was tuned.
    found = queries.similar_products("7", 10, version)
    assert len(found) == 10
    setting, length = (
        ("ivfflat.probes", similar.get("probes"))
        if kept == "ivfflat"
        else (
            "hnsw.ef_search",
            similar.get("ef_search"),
        )
    )
    assert session_setting(setting) == str(length)


@pytest.mark.django_db
def test_auto_keeps_a_short_hnsw_search_without_trying_ivfflat(settings, monkeypatch):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SCORE_INDEX": "auto"}
    monkeypatch.setattr(tuning, "_compare_with_ivfflat", lambda *args: pytest.fail("compared"))
    version, _ = clustered_version(users_between_clusters=False)
    tuning.prepare_search(version)
    assert indexes.index_kind(indexes.SCORE_SPEC, version.pk) == "hnsw"


def test_which_tuned_search_serves_better():
    def tuned(recall, ms):
        return {"recall": recall, "ms": ms, "target": 0.97}

    assert tuning._better(tuned(0.98, 1.0), tuned(0.99, 3.0))  # both reach the target: faster wins
    assert not tuning._better(tuned(0.98, 3.0), tuned(0.99, 1.0))
    assert tuning._better(tuned(0.97, 9.0), tuned(0.80, 1.0))  # only the candidate reaches it
    assert not tuning._better(tuned(0.90, 1.0), tuned(0.97, 9.0))
    assert tuning._better(tuned(0.90, 9.0), tuned(0.80, 1.0))  # neither: more found wins
    assert not tuning._better(tuned(0.80, 1.0), tuned(0.90, 9.0))


@pytest.mark.django_db
def test_auto_never_rebuilds_the_index_of_the_version_that_is_serving(settings, monkeypatch):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SCORE_INDEX": "auto"}
    monkeypatch.setattr(tuning, "LONG_EF_SEARCH", 40)
    monkeypatch.setattr(tuning, "_compare_with_ivfflat", lambda *args: pytest.fail("rebuilt a serving index"))
    version, _ = clustered_version(users_between_clusters=True)
    version.status = ModelStatus.ACTIVE
    version.save()
    tuning.prepare_search(version)
    version.refresh_from_db()
    assert version.vector_search["index"] == "hnsw" and version.vector_search["recall"] >= 0.97


@pytest.mark.django_db
def test_similar_products_search_as_long_as_the_versions_products_need(settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SCORE_SEARCH_RECALL": 0.99}
    version, _ = clustered_version(users_between_clusters=False)
    tuning.prepare_search(version)
    version.refresh_from_db()
    similar = version.vector_search["similar"]
    assert similar["recall"] >= 0.99 and similar["products"] == tuning.SAMPLE_PRODUCTS
    assert similar["ef_search"] in range(40, 1001)
    # Serving searches that long, and finds what the tuning measured.
    queries.similar_products("7", 10, version)
    assert session_setting("hnsw.ef_search") == str(similar["ef_search"])
    # The score search's own tuning keeps it.
    tuning.tune_score_search(version)
    version.refresh_from_db()
    assert version.vector_search["similar"] == similar and version.vector_search["recall"] >= 0.99


@pytest.mark.django_db
def test_similar_tuning_keeps_the_shortest_search_that_reaches_the_target(monkeypatch):
    version, _ = clustered_version(users_between_clusters=False, n_items=500, n_users=5)
    indexes.build_indexes(version)
    tried = []

    def measure(version, product_ids, exact):
        length = version.vector_search["similar"]["ef_search"]
        tried.append(length)
        return (0.99 if length >= 260 else 0.9), 1.0

    monkeypatch.setattr(tuning, "measure_similar", measure)
    tuning.tune_similar_search(version)
    version.refresh_from_db()
    assert version.vector_search["similar"]["ef_search"] == 275
    assert tried == [40, 100, 200, 400, 300, 250, 275]


@pytest.mark.django_db
def test_exact_cosine_neighbours_leave_the_product_itself_out(monkeypatch):
    version, _ = clustered_version(users_between_clusters=False, n_items=300, n_users=2)
    monkeypatch.setattr(tuning, "CHUNK", 7)
    found = queries.product_vectors([str(i) for i in range(1, 301)], version)
    units = {pid: v.embedding / np.linalg.norm(v.embedding) for pid, v in found.items()}
    seeds = ["5", "123"]
    exact = tuning._exact_top(version, [found[p].embedding for p in seeds], cosine=True, skip=seeds)
    for seed, top in zip(seeds, exact, strict=True):
        ranked = sorted((p for p in units if p != seed), key=lambda p: -float(units[p] @ units[seed]))
        assert top == set(ranked[:10]) and seed not in top
