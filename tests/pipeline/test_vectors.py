"""Vectors in pgvector: the COPY writer, per-version indexes, queries, activation, rollback, purge."""

import importlib
import threading

import numpy as np
import psycopg
import pytest
from django.apps import apps as django_apps
from django.conf import settings
from django.db import OperationalError, connection, connections, transaction
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations import pipeline
from recommendations.locks import advisory_lock, lock_key
from recommendations.models import (
    ModelStatus,
    ModelVersion,
    PrecomputedList,
    ProductVector,
    StoreVector,
    UserVector,
)
from recommendations.vectors import activation, indexes, queries, tuning, writer
from tests.waiting import wait_for_waiters

DIMS = 8


def make_version(n=300, seed=0, status=ModelStatus.READY, **fields):
    """A version with n random product vectors, 3 store vectors and indexes, fully embedded."""
    version = ModelVersion.objects.create(status=status, dimensions=DIMS, **fields)
    rng = np.random.default_rng(seed)
    ids = [str(i) for i in range(1, n + 1)]
    writer.write_product_vectors(version, ids, rng.normal(size=(n, DIMS)), rng.normal(0, 0.1, n))
    writer.write_store_vectors(version, ["1", "2", "3"], rng.normal(size=(3, DIMS)))
    version.embedded_at = timezone.now()
    version.save(update_fields=["embedded_at"])
    indexes.build_indexes(version)
    return version


def plan_of(sql):
    """EXPLAIN of a query as run. Sequential scans and sorts are ruled out: on a few thousand
    rows the planner may rightly prefer sorting them all, and the point here is that the query's
    expression and filter match the version's index (an index that does not match stays
    unused even then). benchmarks/vectors.py shows the plan chosen freely at 100k+ rows."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {sql}")
        return "\n".join(row[0] for row in cursor.fetchall())


def exact_top(version, query, k, exclude=()):
    rows = ProductVector.objects.filter(model_version=version).values_list("product_id", "embedding", "bias")
    scored = sorted(((float(np.dot(e, query) + b), p) for p, e, b in rows if p not in exclude), reverse=True)
    return [p for _, p in scored[:k]]


@pytest.mark.django_db
def test_writer_round_trips_and_is_idempotent():
    version = ModelVersion.objects.create(dimensions=DIMS)
    rng = np.random.default_rng(1)
    ids = ["1", "22", "333", "ünï-4", "5"]  # keys of several byte lengths
    emb, bias = rng.normal(size=(5, DIMS)), rng.normal(size=5)
    assert writer.write_product_vectors(version, ids, emb, bias) == 5
    assert writer.write_product_vectors(version, ids, emb, bias) == 5  # a retried task
    stored = {p.product_id: p for p in ProductVector.objects.filter(model_version=version)}
    assert sorted(stored) == sorted(ids)
    for i, key in enumerate(ids):
        np.testing.assert_allclose(stored[key].embedding, emb[i], rtol=1e-6)
        assert stored[key].bias == pytest.approx(bias[i])
    # Replacing some keys leaves the others alone.
    writer.write_product_vectors(version, ["22"], np.ones((1, DIMS)), replace_all=False)
    assert ProductVector.objects.filter(model_version=version).count() == 5
    np.testing.assert_allclose(ProductVector.objects.get(model_version=version, product_id="22").embedding, 1)
    # Users have integer keys.
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create(username="u")
    writer.write_user_vectors(version, [user.pk], np.full((1, DIMS), 0.5))
    np.testing.assert_allclose(queries.user_vector(user.pk, version), 0.5)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "ids, emb, message",
    [
        (["1", "2"], np.zeros((3, DIMS)), "one embedding row per key"),
        (["1", "2"], np.zeros((2, DIMS + 1)), "8-dimensional"),
        (["1", "1"], np.zeros((2, DIMS)), "duplicates"),
        (["1", "2"], np.array([[np.nan] * DIMS, [0] * DIMS]), "finite"),
    ],
)
def test_bad_input_writes_nothing(ids, emb, message):
    version = make_version(n=10)
    with pytest.raises(ValueError, match=message):
        writer.write_product_vectors(version, ids, emb)
    assert ProductVector.objects.filter(model_version=version).count() == 10


@pytest.mark.django_db
@pytest.mark.parametrize("method", ["ivfflat", "hnsw"])
def test_queries_use_the_versions_index_and_rank_by_score(method, settings):
    # Probes past the lists' count (sqrt(2000) = 45) make the IVFFlat search exact, as HNSW's
    # is at this size, so answers can be compared with the exact ranking.
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SCORE_INDEX": method, "IVFFLAT_PROBES": 64}
    version = make_version(n=2000)
    other = make_version(n=50, seed=9)  # another version's rows never leak into answers
    query = np.random.default_rng(5).normal(size=DIMS)
    with CaptureQueriesContext(connection) as executed:
        queries.nearest_products(query, 10, version=version)
    knn = [q["sql"] for q in executed.captured_queries if "ORDER BY" in q["sql"]]
    assert f"Index Scan using rec_product_score_v{version.pk} " in plan_of(knn[-1])
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexdef FROM pg_indexes WHERE indexname = %s", [f"rec_product_score_v{version.pk}"]
        )
        assert f"USING {method} " in cursor.fetchone()[0]
    found = queries.nearest_products(query, 10, version=version)
    assert [p for p, _ in found] == exact_top(version, query, 10)
    scores = [s for _, s in found]
    assert scores == sorted(scores, reverse=True)
    # Exclusions and filters; ids of the other version are never returned.
    top = [p for p, _ in found]
    assert [p for p, _ in queries.nearest_products(query, 5, version=version, exclude=top[:3])] == exact_top(
        version, query, 5, exclude=top[:3]
    )
    within = {str(i) for i in range(1, 2001, 7)}
    filtered = queries.nearest_products(query, 10, version=version, filter_ids=within)
    assert len(filtered) == 10 and {p for p, _ in filtered} <= within
    # Iterative index scans fill answers longer than ef_search (or than one list holds) and
    # heavy exclusions.
    shortest = {"HNSW_EF_SEARCH_FOR_USERS": 100, "IVFFLAT_PROBES": 1}
    with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, **shortest}):
        assert len(queries.nearest_products(query, 150, version=version)) == 150
        many = [p for p, _ in queries.nearest_products(query, 300, version=version)]
        assert len(queries.nearest_products(query, 10, version=version, exclude=many)) == 10
    assert {p for p, _ in queries.nearest_products(query, 100, version=other)} <= {
        str(i) for i in range(1, 51)
    }
    with CaptureQueriesContext(connection) as executed:
        similar = queries.similar_products("1", 5, version=version)
    assert len(similar) == 5 and "1" not in dict(similar)
    # The seed's vector is read inside the k-NN statement, which still uses the index.
    assert len([q for q in executed.captured_queries if "set_config" not in q["sql"]]) == 1
    assert f"Index Scan using rec_product_cos_v{version.pk} " in plan_of(executed.captured_queries[-1]["sql"])
    assert queries.similar_products("no-such-product", 5, version=version) == []
    assert [s for _, s in queries.nearest_stores(query, 3, version=version)]
    with pytest.raises(ValueError, match="8 finite numbers"):
        queries.nearest_products(np.zeros(3), 5, version=version)


@pytest.mark.django_db(transaction=True)
def test_user_queries_search_longer_than_item_queries():
    """A user's vector searches with HNSW_EF_SEARCH_FOR_USERS, an item's (or one made of
    items) with HNSW_EF_SEARCH;
    each set once per connection while it does not change."""
    version = make_version(n=200)
    query = np.random.default_rng(5).normal(size=DIMS)

    def ef_search(name="hnsw.ef_search"):
        with connection.cursor() as cursor:
            cursor.execute(f"SHOW {name}")
            return cursor.fetchone()[0]

    lengths = {"HNSW_EF_SEARCH": 60, "HNSW_EF_SEARCH_FOR_USERS": 700, "IVFFLAT_PROBES": 7}
    with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, **lengths}):
        queries.nearest_products(query, 5, version=version)
        assert ef_search() == "700"
        assert ef_search("ivfflat.probes") == "7"  # whichever kind the score index is
        queries.nearest_stores(query, 3, version=version)
        assert ef_search() == "700"
        queries.similar_products("1", 5, version=version)
        assert ef_search() == "60"
        # A vector made of items (a search's meaning) lies among them: the item search length.
        queries.nearest_products(query, 5, version=version, from_items=True)
        assert ef_search() == "60"
        with CaptureQueriesContext(connection) as executed:
            queries.similar_products("2", 5, version=version)
        assert not [q for q in executed.captured_queries if "set_config" in q["sql"]]
        # Each search sets only what its index reads: a tuned IVFFlat score index reads the
        # probes, the cosine (HNSW) index ef_search, so alternating them sets nothing more.
        version.vector_search = {"index": "ivfflat", "probes": 3, "similar": {"ef_search": 50}}
        queries.nearest_products(query, 5, version=version)
        queries.similar_products("1", 5, version=version)
        assert (ef_search(), ef_search("ivfflat.probes")) == ("50", "3")
        with CaptureQueriesContext(connection) as executed:
            for seed in "234":
                queries.nearest_products(query, 5, version=version)
                queries.similar_products(seed, 5, version=version)
        assert len(executed.captured_queries) == 6
        assert not [q for q in executed.captured_queries if "set_config" in q["sql"]]


def test_ivfflat_lists_are_the_square_root_of_the_rows_within_pgvectors_limits():
    assert [indexes.ivfflat_lists(rows) for rows in (0, 12, 100_000, 1_000_000, 10**10)] == [
        1,
        3,
        316,
        1000,
        32768,
    ]


@pytest.mark.django_db
def test_index_build_is_idempotent_and_drop_removes_them():
    version = make_version(n=100)
    assert indexes.build_indexes(version) == []
    assert all(indexes.existing_indexes(version.pk).values())
    assert len(indexes.drop_indexes(version)) == len(indexes.INDEX_SPECS)
    assert indexes.existing_indexes(version.pk) == {}
    assert len(indexes.reindex(version)) == len(indexes.INDEX_SPECS)


def leave_reindex_leftovers(version, spec=indexes.SCORE_SPEC, suffixes=("_ccnew", "_ccnew1", "_ccold")):
    """Indexes named as an interrupted REINDEX CONCURRENTLY leaves them (what they index does
    not matter here); returns their names."""
    names = [indexes.index_name(spec, version.pk) + suffix for suffix in suffixes]
    with connection.cursor() as cursor:
        for name in names:
            cursor.execute(
                f'CREATE INDEX "{name}" ON {spec.model._meta.db_table} (model_version_id) '
                f"WHERE model_version_id = {int(version.pk)}"
            )
    return names


@pytest.mark.django_db
def test_leftovers_of_an_interrupted_reindex_are_found_and_dropped():
    version, other = make_version(n=50), make_version(n=20, seed=1)
    leftovers = leave_reindex_leftovers(version)
    assert set(leftovers) <= set(indexes.existing_indexes(version.pk))
    assert not set(leftovers) & set(indexes.existing_indexes(other.pk))

    rebuilt = indexes.reindex(version)  # a retried reindex starts clean
    assert sorted(indexes.existing_indexes(version.pk)) == sorted(rebuilt)
    assert len(rebuilt) == len(indexes.INDEX_SPECS)

    leftovers = leave_reindex_leftovers(version, indexes.COSINE_SPEC)
    dropped = indexes.drop_indexes(version)  # retiring the version
    assert set(leftovers) < set(dropped) and indexes.existing_indexes(version.pk) == {}
    assert len(indexes.existing_indexes(other.pk)) == len(indexes.INDEX_SPECS)


@pytest.mark.django_db(transaction=True)
def test_activation_is_atomic_for_readers_in_another_connection(monkeypatch):
    monkeypatch.setattr(queries, "ACTIVE_VERSION_TTL", 0.0)
    old, new = make_version(seed=1), make_version(seed=2)
    activation.activate(old)
    query = np.random.default_rng(7).normal(size=DIMS)
    answers = {
        old.pk: [p for p, _ in queries.nearest_products(query, 10, version=old)],
        new.pk: [p for p, _ in queries.nearest_products(query, 10, version=new)],
    }
    assert answers[old.pk] != answers[new.pk]

    def read_in_other_connection():
        try:
            version = queries.active_version(fresh=True)
            return version.pk, [p for p, _ in queries.nearest_products(query, 10)]
        finally:
            connection.close()

    def in_thread(fn):
        out = []
        thread = threading.Thread(target=lambda: out.append(fn()))
        thread.start()
        thread.join()
        return out[0]

    with transaction.atomic():
        activation.activate(new)
        # Not committed yet: another connection still sees the old version, complete.
        assert in_thread(read_in_other_connection) == (old.pk, answers[old.pk])
    assert in_thread(read_in_other_connection) == (new.pk, answers[new.pk])

    # Readers hammering the API during repeated switches see one version's answer, never a mix.
    seen, stop = [], threading.Event()

    def reader():
        try:
            while not stop.is_set():
                seen.append([p for p, _ in queries.nearest_products(query, 10)])
        finally:
            connection.close()

    thread = threading.Thread(target=reader)
    thread.start()
    for _ in range(5):
        activation.rollback()
    stop.set()
    thread.join()
    assert seen and all(answer in answers.values() for answer in seen)
    assert ModelVersion.objects.get(status=ModelStatus.ACTIVE).pk == old.pk  # 5 rollbacks: back and forth


@pytest.mark.django_db
def test_rollback_and_activation_errors():
    with pytest.raises(activation.ActivationError, match="no previously active"):
        activation.rollback()
    first, second = make_version(seed=1), make_version(seed=2)
    assert activation.activate(first).previous is None
    switched = activation.activate(second)
    assert (switched.version.pk, switched.previous.pk) == (second.pk, first.pk)
    assert switched.previous.status == ModelStatus.READY
    assert activation.activate(second).previous is None  # already active: nothing replaced
    back = activation.rollback()
    assert (back.version.pk, back.previous.pk) == (first.pk, second.pk)
    second.refresh_from_db()
    assert second.status == ModelStatus.READY
    empty = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=DIMS)
    with pytest.raises(activation.ActivationError, match="no product vectors"):
        activation.activate(empty)
    failed = ModelVersion.objects.create(status=ModelStatus.FAILED, dimensions=DIMS)
    with pytest.raises(activation.ActivationError, match="is failed"):
        activation.activate(failed)
    assert ModelVersion.objects.get(status=ModelStatus.ACTIVE).pk == first.pk


@pytest.mark.django_db(transaction=True)
def test_an_activation_that_finished_a_killed_embed_shows_it_done():
    from django.contrib.admin.sites import site

    version = make_version(n=5, seed=4)
    version.progress = {"stage": "building indexes", "done": 0, "total": 1}  # its embed was killed there
    version.save()
    activation.activate(version)
    version.refresh_from_db()
    assert site._registry[ModelVersion].progress_display(version) == "done"


@pytest.mark.django_db
def test_the_migration_marks_versions_embedded_before_the_field_existed():
    migration = importlib.import_module("recommendations.migrations.0020_model_version_embedded_at")
    done, stuck, active = make_version(n=5, seed=1), make_version(n=5, seed=2), make_version(n=5, seed=3)
    stuck.progress = {"stage": "writing vectors", "done": 0, "total": 3}  # its worker was killed there
    stuck.save()
    active.progress = {"stage": "writing vectors", "done": 0, "total": 3}  # active: it serves anyway
    active.status = ModelStatus.ACTIVE
    active.save()
    never = ModelVersion.objects.create(status=ModelStatus.READY, dimensions=DIMS)  # trained only
    ModelVersion.objects.update(embedded_at=None)

    migration.mark_embedded(django_apps, None)

    embedded = dict(ModelVersion.objects.values_list("pk", "embedded_at"))
    assert embedded[done.pk] and embedded[active.pk]
    assert embedded[stuck.pk] is None and embedded[never.pk] is None


@pytest.mark.django_db(transaction=True)
def test_purge_keeps_the_active_and_previous_versions():
    versions = [make_version(n=20, seed=i) for i in range(4)]
    for version in versions[:3]:
        activation.activate(version)
    stale = ModelVersion.objects.create(status=ModelStatus.TRAINING, dimensions=DIMS)  # its worker died
    result = activation.purge()
    assert sorted(result.retired) == sorted([versions[0].pk, versions[3].pk, stale.pk])
    statuses = dict(ModelVersion.objects.values_list("pk", "status"))
    assert statuses[versions[2].pk] == ModelStatus.ACTIVE
    assert statuses[versions[1].pk] == ModelStatus.READY
    assert statuses[versions[0].pk] == statuses[versions[3].pk] == ModelStatus.RETIRED
    assert statuses[stale.pk] == ModelStatus.FAILED
    for model in (ProductVector, StoreVector, UserVector, PrecomputedList):
        assert set(model.objects.values_list("model_version_id", flat=True).distinct()) <= {
            versions[1].pk,
            versions[2].pk,
        }
    assert PrecomputedList.objects.filter(model_version=versions[2]).exists()  # kept with the active one
    assert indexes.existing_indexes(versions[0].pk) == {}
    versions[0].refresh_from_db()
    assert "lists" not in versions[0].vector_search
    with pytest.raises(activation.ActivationError, match="is retired"):
        activation.activate(versions[0])


@pytest.mark.django_db(transaction=True)
def test_purge_keeps_the_versions_experiments_serve():
    """A candidate trained without --activate is never activated, yet a running experiment
    tests it; a promoted winner's version is everyone's default once no experiment runs."""
    from recommendations.experiments import lifecycle
    from recommendations.models import Experiment, Variant

    active, candidate, winner, stale = (make_version(n=20, seed=i) for i in range(4))
    activation.activate(active)
    won = Experiment.objects.create(key="won", name="won")
    Variant.objects.create(experiment=won, key="control", is_control=True, traffic_share=50)
    Variant.objects.create(experiment=won, key="b", traffic_share=50, model_version=winner)
    lifecycle.start(won)
    lifecycle.stop(won, promote=won.variants.get(key="b"))
    running = Experiment.objects.create(key="running", name="running")
    Variant.objects.create(experiment=running, key="control", is_control=True, traffic_share=50)
    Variant.objects.create(experiment=running, key="candidate", traffic_share=50, model_version=candidate)
    lifecycle.start(running)

    assert activation.purge().retired == [stale.pk]
    statuses = dict(ModelVersion.objects.values_list("pk", "status"))
    assert statuses[candidate.pk] == statuses[winner.pk] == ModelStatus.READY
    assert ProductVector.objects.filter(model_version=candidate).count() == 20


def start_thread(fn):
    """Run `fn` on a connection of its own; returns the thread and a list that gets its result
    (or the exception it raised)."""
    out = []

    def target():
        try:
            out.append(fn())
        except Exception as exc:  # handed to the test to assert on
            out.append(exc)
        finally:
            connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


@pytest.mark.django_db(transaction=True)
def test_activations_of_one_version_build_its_indexes_one_at_a_time():
    version = make_version(n=50)
    indexes.drop_indexes(version)  # as a kill between embedding and index building leaves it
    with indexes.build_lock(version.pk):  # another activation (or a retrain) is building them
        thread, out = start_thread(lambda: activation.activate(version))
        thread.join(1.5)
        assert thread.is_alive() and indexes.existing_indexes(version.pk) == {}  # it waits
    thread.join(60)
    assert out[0].version.status == ModelStatus.ACTIVE, out
    assert len(indexes.existing_indexes(version.pk)) == len(indexes.INDEX_SPECS)


@pytest.mark.django_db(transaction=True)
def test_an_activation_waits_for_the_activation_lock_held_by_the_locks_key_scheme():
    """One key scheme: what `is_locked` sees, and `advisory_lock` takes, an activation waits for."""
    version = make_version(n=50)
    with advisory_lock(activation.ACTIVATION_LOCK) as held:  # another activation is switching
        assert held
        thread, out = start_thread(lambda: activation.activate(version))
        thread.join(1.5)
        assert thread.is_alive() and not out  # it waits
    thread.join(60)
    assert out[0].version.status == ModelStatus.ACTIVE, out


@pytest.mark.django_db(transaction=True)
def test_two_activations_of_one_version_switch_once_and_announce_it_once():
    """Both found the version ready and waited for the switch; the second finds it active under
    the lock: nothing to replace, no second `version_activated` (a second sync queued), and its
    activation time stays the first's."""
    serving, version = make_version(n=50), make_version(n=50, seed=1)
    activation.activate(serving)
    heard = []

    def hear(sender, version, **kwargs):
        heard.append(version.pk)

    activation.version_activated.connect(hear)
    try:
        with advisory_lock(activation.ACTIVATION_LOCK):  # another activation is switching
            threads = [start_thread(lambda: activation.activate(version)) for _ in range(2)]
            wait_for_waiters(2, activation.ACTIVATION_LOCK)
        for thread, _ in threads:
            thread.join(60)
    finally:
        activation.version_activated.disconnect(hear)
    results = [out[0] for _, out in threads]
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sorted(r.already_active for r in results) == [False, True]
    switched = next(r for r in results if not r.already_active)
    assert switched.previous.pk == serving.pk
    assert heard == [version.pk]
    version.refresh_from_db()
    assert version.status == ModelStatus.ACTIVE and version.activated_at == switched.version.activated_at
    serving.refresh_from_db()
    assert activation.previous_version().pk == serving.pk


@pytest.mark.django_db(transaction=True)
def test_a_purge_waits_for_whoever_builds_a_versions_indexes():
    """The admin's "activate" holds only the version's index lock, not the pipeline's: the
    daily purge must not drop the indexes it is building, nor delete their vectors."""
    version = make_version(n=50)
    with indexes.build_lock(version.pk):  # an activation of this stale version is building them
        thread, out = start_thread(activation.purge)
        thread.join(1.5)
        assert thread.is_alive()  # it waits
        assert len(indexes.existing_indexes(version.pk)) == len(indexes.INDEX_SPECS)
        assert ProductVector.objects.filter(model_version=version).count() == 50
    thread.join(60)
    assert out[0].retired == [version.pk], out
    assert indexes.existing_indexes(version.pk) == {}


@pytest.mark.django_db(transaction=True)
def test_a_version_activated_while_the_purge_waited_is_kept():
    version = make_version(n=50)
    with indexes.build_lock(version.pk):
        thread, out = start_thread(activation.purge)
        thread.join(1.5)
        assert thread.is_alive()  # it listed the version as stale, and waits for the lock
        ModelVersion.objects.filter(pk=version.pk).update(status=ModelStatus.ACTIVE)  # as activate() does
    thread.join(60)
    assert out[0].retired == [] and out[0].vectors_deleted == 0, out
    assert len(indexes.existing_indexes(version.pk)) == len(indexes.INDEX_SPECS)
    assert ProductVector.objects.filter(model_version=version).count() == 50


@pytest.mark.django_db(transaction=True)
def test_an_activation_that_waited_for_a_purge_builds_nothing_on_its_deleted_vectors():
    version = make_version(n=50)
    with indexes.build_lock(version.pk):  # the purge is retiring it
        thread, out = start_thread(lambda: activation.activate(version))
        thread.join(0.5)
        assert thread.is_alive()
        assert activation._mark_retired(version)  # what retire() does once it holds the lock
        activation._retire(version)
    thread.join(60)
    assert isinstance(out[0], activation.ActivationError) and "is retired" in str(out[0]), out
    assert indexes.existing_indexes(version.pk) == {}


@pytest.mark.django_db(transaction=True)
def test_a_purge_racing_an_activation_of_the_version_it_retires_leaves_one_version_serving():
    """The purge once read the version's status unlocked and wrote `retired` at the end, over
    an activation that committed meanwhile: no version served. Now whichever takes the
    activation lock first wins, and one version serves, with its vectors."""
    serving, stale = make_version(n=50, seed=1), make_version(n=50, seed=2)
    activation.activate(serving)
    holder = connections.create_connection("default")  # another activation is switching
    reader = connections.create_connection("default")  # something holds a row of the stale vectors
    try:
        for each in (holder, reader):
            each.set_autocommit(False)
        with holder.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [lock_key(activation.ACTIVATION_LOCK)])
        with reader.cursor() as cursor:
            cursor.execute(
                "SELECT 1 FROM recommendations_productvector WHERE model_version_id = %s LIMIT 1 FOR UPDATE",
                [stale.pk],
            )
        activating, activated = start_thread(lambda: activation.activate(stale))
        wait_for_waiters(1, activation.ACTIVATION_LOCK)
        purging, purged = start_thread(activation.purge)
        wait_for_waiters(2, activation.ACTIVATION_LOCK)  # the purge is under way too
        holder.rollback()
        activating.join(60)
    finally:
        for each in (holder, reader):
            each.rollback()
            each.close()
    purging.join(60)

    active = ModelVersion.objects.get(status=ModelStatus.ACTIVE)
    assert ProductVector.objects.filter(model_version=active).count() == 50
    if active.pk == stale.pk:  # the activation won: the purge kept it
        assert purged[0].retired == [], purged
    else:  # the purge won: the activation was refused
        assert active.pk == serving.pk
        assert isinstance(activated[0], activation.ActivationError), activated
        assert f"Model version {stale.pk} is retired" in str(activated[0])
        assert purged[0].retired == [stale.pk], purged


@pytest.mark.django_db(transaction=True)
def test_a_purge_interrupted_after_marking_a_version_retired_is_finished_by_the_next():
    serving, stale = make_version(n=20, seed=1), make_version(n=20, seed=2)
    activation.activate(serving)
    ModelVersion.objects.filter(pk=stale.pk).update(status=ModelStatus.RETIRED)  # killed before deleting
    assert activation.purge().retired == [stale.pk]
    assert not ProductVector.objects.filter(model_version=stale).exists()
    assert indexes.existing_indexes(stale.pk) == {}
    assert activation.purge().retired == []  # done: the next purge leaves it alone


@pytest.mark.django_db(transaction=True)
def test_a_reindex_waits_for_whoever_builds_the_versions_indexes():
    version = make_version(n=50)
    activation.activate(version)
    with indexes.build_lock(version.pk):
        thread, out = start_thread(pipeline.reindex)
        thread.join(1.5)
        assert thread.is_alive()  # it waits
    thread.join(60)
    assert len(out[0].indexes) == len(indexes.INDEX_SPECS), out


@pytest.mark.django_db(transaction=True)
def test_an_index_another_connection_is_building_is_not_taken_for_an_interrupted_one():
    version = make_version(n=50)
    indexes.drop_indexes(version)
    name = indexes.index_name(indexes.SCORE_SPEC, version.pk)
    writer_ = connections.create_connection("default")  # a writer the concurrent build waits for
    writer_.set_autocommit(False)
    try:
        with writer_.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {ProductVector._meta.db_table} IN ROW EXCLUSIVE MODE")
        thread, out = start_thread(lambda: indexes.build_indexes(version, [indexes.SCORE_SPEC]))
        for _ in range(100):  # until its CREATE INDEX CONCURRENTLY has made the (invalid) index
            if indexes.existing_indexes(version.pk).get(name) is False:
                break
            thread.join(0.1)
        assert indexes.existing_indexes(version.pk) == {name: False}
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '5s'")  # dropping it would wait for that build
        with pytest.raises(indexes.IndexBuildInProgress, match=f"Index {name} of model version"):
            indexes.build_indexes(version)
        with pytest.raises(activation.ActivationError, match="is being built right now"):
            activation.activate(version)
    finally:
        writer_.rollback()
        writer_.close()
    thread.join(60)
    assert out == [[name]] and indexes.existing_indexes(version.pk) == {name: True}


@pytest.mark.django_db
def test_a_deadlock_while_building_indexes_is_an_activation_error(monkeypatch):
    version = make_version(n=10)

    def deadlocked(version):
        try:
            raise psycopg.errors.DeadlockDetected("deadlock detected")
        except psycopg.Error as exc:
            raise OperationalError(*exc.args) from exc

    monkeypatch.setattr(tuning, "prepare_search", deadlocked)
    with pytest.raises(activation.ActivationError, match=f"indexes of model version {version.pk}.*Try again"):
        activation.activate(version)
