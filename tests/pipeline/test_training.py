"""The training service and the pipeline, in process: versions, metrics, artifacts, failures,
embedding, activation, and single products embedded from content."""

import datetime as dt
import time

import numpy as np
import pytest
from celery import current_app
from django.db import connection, connections
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from safetensors import safe_open

from recommendations import artifacts, indexing, pipeline, queues, tasks, training
from recommendations.features import InsufficientData
from recommendations.locks import advisory_lock
from recommendations.models import (
    Event,
    ListKind,
    ModelStatus,
    ModelVersion,
    PrecomputedList,
    ProductVector,
    StoreVector,
    UserVector,
)
from recommendations.progress import Progress
from recommendations.vectors import activation, embedding, lists, queries, tuning, writer
from shop.models import Product
from shop.recommendations import ProductAdapter as ShopProductAdapter
from tests.pipeline.data import copy_product, tiny_settings
from tests.pipeline.tiny import TINY_TRAINING


def own_store_share(shop, version, users=10, k=10):
    """Share of the top-k products that come from each user's own store (planted taste)."""
    hits = []
    for user in shop.users[:users]:
        vector = queries.user_vector(user.pk, version)
        top = [p for p, _ in queries.nearest_products(vector, k, version=version)]
        own = shop.store_product_ids(shop.taste[user.pk])
        hits.append(np.mean([p in own for p in top]))
    return float(np.mean(hits))


def test_train_model_registers_a_ready_version(shop):
    version = training.train_model()
    assert version.status == ModelStatus.READY
    assert version.device == "cpu" and version.training_seconds > 0
    assert version.n_items == len(shop.products) and version.n_users == len(shop.users)
    assert version.dimensions == 16
    assert [p["epoch"] for p in version.training_curve] == [1, 2, 3]
    assert 0 <= version.metrics["NDCG@10"] <= 1 and "popularity" in version.metrics["baselines"]
    # The artifact is safetensors (no pickle) and loads back to the same item order.
    with safe_open(version.artifact.path, "np") as f:
        assert f.keys()
    loaded = embedding.load_model(version)
    assert sorted(loaded.items.keys) == sorted(str(p.pk) for p in shop.products)
    assert not ModelVersion.objects.filter(status=ModelStatus.ACTIVE).exists()


@pytest.mark.django_db
def test_too_little_data_creates_no_version():
    with pytest.raises(InsufficientData, match="catalogue is empty"):
        training.train_model()
    assert not ModelVersion.objects.exists()


@pytest.mark.django_db
def test_an_embed_that_finds_the_pipeline_locked_logs_why(caplog):
    version = ModelVersion.objects.create(status=ModelStatus.READY)
    with advisory_lock():
        result = pipeline.embed_version(version)
    assert result.skipped == pipeline.LOCKED and not ProductVector.objects.exists()
    assert "Embed skipped: another retrain or embed is running" in caplog.text


def test_diverging_loss_fails_the_version_and_keeps_the_active_one(shop):
    good = pipeline.retrain().version
    with override_settings(RECOMMENDATIONS=tiny_settings(TRAINING={**TINY_TRAINING, "lr": 1e30})):
        with pytest.raises(training.TrainingFailed, match="loss became"):
            pipeline.retrain()
    failed = ModelVersion.objects.exclude(pk=good.pk).get()
    assert failed.status == ModelStatus.FAILED and "Lower the learning rate" in failed.error
    assert queries.active_version(fresh=True).pk == good.pk
    assert not ProductVector.objects.filter(model_version=failed).exists()


def test_retrain_embeds_and_activates_a_model_that_learned_the_planted_taste(shop):
    result = pipeline.retrain()
    version = result.version
    assert result.activated and queries.active_version(fresh=True).pk == version.pk
    assert ProductVector.objects.filter(model_version=version).count() == len(shop.products)
    assert StoreVector.objects.filter(model_version=version).count() == len(shop.stores)
    assert UserVector.objects.filter(model_version=version).count() == len(shop.users)
    # Users shop 90% in one store: their own store's products dominate their top 10.
    assert own_store_share(shop, version) > 0.6
    # Serving's lists were ranked with the indexes: every product's and every user's.
    listed = PrecomputedList.objects.filter(model_version=version)
    assert listed.filter(kind=ListKind.SIMILAR).count() == len(shop.products)
    assert listed.filter(kind=ListKind.FOR_USER).count() == len(shop.users)
    user = shop.users[0]
    top = listed.get(kind=ListKind.FOR_USER, key=str(user.pk)).product_ids[:10]
    assert top == [p for p, _ in queries.nearest_products(queries.user_vector(user.pk, version), 10, version)]


def test_vectors_written_again_are_ranked_again(shop):
    version = pipeline.retrain().version
    embedding.embed_version(version)  # as a retried task does
    version.refresh_from_db()
    assert lists.LISTS not in version.vector_search
    assert not PrecomputedList.objects.filter(model_version=version).exists()
    tuning.prepare_search(version)
    assert PrecomputedList.objects.filter(model_version=version).count() == len(shop.products) + len(
        shop.users
    )


def test_events_of_a_user_who_no_longer_exists_do_not_fail_the_retrain(shop):
    """Events have no foreign key to their user, so some may outlive a deleted user (stored
    before writers locked the users of a batch): the embed writes no vector for such a user
    instead of failing every retrain on the user vectors' foreign key."""
    gone = max(user.pk for user in shop.users) + 1000
    now = timezone.now()
    Event.objects.bulk_create(
        Event(
            event_type="purchase",
            user_id=gone,
            product_id=str(product.pk),
            timestamp=now - dt.timedelta(hours=i),
        )
        for i, product in enumerate(shop.products[:5])
    )

    result = pipeline.retrain()

    assert result.version.status == ModelStatus.ACTIVE
    vectors = UserVector.objects.filter(model_version=result.version)
    assert vectors.count() == len(shop.users) and not vectors.filter(user_id=gone).exists()


def test_an_interrupted_embed_leaves_a_version_that_cannot_be_activated(shop, monkeypatch):
    version = training.train_model()

    def worker_killed(*args, **kwargs):
        raise KeyboardInterrupt  # after the product and store vectors, before the user vectors

    monkeypatch.setattr(writer, "write_user_vectors", worker_killed)
    with pytest.raises(KeyboardInterrupt):
        embedding.embed_version(version)
    version.refresh_from_db()
    assert version.embedded_at is None and ProductVector.objects.filter(model_version=version).exists()
    with pytest.raises(
        activation.ActivationError, match=rf"not fully embedded.*embed --model-version {version.pk}`"
    ):
        activation.activate(version)

    monkeypatch.undo()  # run again, as the message says
    embedding.embed_version(version)
    version.refresh_from_db()
    assert version.embedded_at is not None
    assert activation.activate(version).version.status == ModelStatus.ACTIVE
    assert UserVector.objects.filter(model_version=version).count() == len(shop.users)


def test_refresh_vectors_makes_a_new_version_with_the_same_model(shop):
    first = pipeline.retrain().version
    second = pipeline.refresh_vectors().version
    assert second.pk != first.pk and second.artifact.name == first.artifact.name
    assert queries.active_version(fresh=True).pk == second.pk
    first.refresh_from_db()
    assert first.status == ModelStatus.READY  # kept for rollback
    assert activation.rollback().version.pk == first.pk


def test_new_product_is_embedded_from_its_content(shop):
    version = pipeline.retrain().version
    template = shop.products[0]
    # A product saved again is re-embedded: its precomputed neighbours no longer hold.
    assert lists.similar(str(template.pk), 10, version) is not None
    embedding.sync_products([str(template.pk)])
    assert lists.similar(str(template.pk), 10, version) is None
    product = copy_product(template, "brand-new")
    assert embedding.sync_products([str(product.pk)]).written == 1
    similar = [p for p, _ in queries.similar_products(str(product.pk), 10, version=version)]
    own = shop.store_product_ids(shop.stores.index(template.store))
    assert np.mean([p in own for p in similar]) > 0.5
    # Deactivated: its vector goes; the scheduled sync finds nothing left to do.
    Product.objects.filter(pk=product.pk).update(is_active=False)
    assert embedding.sync_products([str(product.pk)]).removed == 1
    assert embedding.sync_all_products().as_dict() == {"written": 0, "removed": 0, "skipped": ""}


def vector_of(product, version):
    return np.asarray(ProductVector.objects.get(model_version=version, product_id=str(product.pk)).embedding)


def test_the_scheduled_sync_re_embeds_a_product_saved_since_its_vector(shop):
    """Broker down on save: the save stands and the next scheduled sync gives the product its
    new content's vector. (The test's transaction never commits, so no on-commit embed runs.)"""
    version = pipeline.retrain().version
    product = copy_product(shop.products[0], "late-arrival")  # after training: embedded from content
    assert embedding.sync_all_products().as_dict() == {"written": 1, "removed": 0, "skipped": ""}
    before = vector_of(product, version)
    elsewhere = shop.products[-1]  # another store's product: other words, category and brand
    for name in ("title", "description", "category", "store", "brand", "price"):
        setattr(product, name, getattr(elsewhere, name))
    product.save()
    assert embedding.sync_all_products().as_dict() == {"written": 1, "removed": 0, "skipped": ""}
    assert not np.allclose(vector_of(product, version), before)
    assert embedding.sync_all_products().written == 0  # up to date now


class RevisionNumbered(ShopProductAdapter):
    """A host whose `updated_field` is a revision number (as django-concurrency's
    IntegerVersionField is), which cards compare for equality; the shop's `stock` stands in."""

    updated_field = "stock"


def test_an_updated_field_that_is_no_time_leaves_the_sync_to_missing_vectors(shop, settings):
    """Only a time can be compared with when a vector was computed: a revision number (or a
    date) made every scheduled sync fail."""
    version = pipeline.retrain().version
    settings.RECOMMENDATIONS = {
        **settings.RECOMMENDATIONS,
        "PRODUCT_ADAPTER": "tests.pipeline.test_training.RevisionNumbered",
    }
    product = shop.products[2]
    product.title, product.stock = "Renamed after the embed", product.stock + 1
    product.save()
    created = copy_product(shop.products[0], "late-arrival")
    assert embedding.sync_all_products(version).written == 1  # the new one only
    assert ProductVector.objects.filter(model_version=version, product_id=str(created.pk)).exists()


def test_the_scheduled_sync_reads_the_versions_vectors_once_and_their_times_only_for_saved_products(shop):
    """The vector table holds every version's rows: besides the keys it always read, the sync
    reads the stamps of the few products saved since the version was made, not a MIN over all."""
    version = pipeline.retrain().version
    product = shop.products[2]
    product.title = "Renamed after the embed"
    product.save()
    with CaptureQueriesContext(connection) as queries:
        assert embedding.sync_all_products(version).written == 1
    table = ProductVector._meta.db_table
    reads = [q["sql"] for q in queries if f'FROM "{table}"' in q["sql"] and q["sql"].startswith("SELECT")]
    assert len(reads) == 2 and not [sql for sql in reads if "MIN(" in sql.upper()], reads


def test_a_product_saved_while_an_embed_ran_is_stale_in_its_vectors(shop):
    """The vectors are stamped with when the catalogue was read, not when they were written."""
    pipeline.retrain()
    product = shop.products[3]

    def save_meanwhile(stage, done, total):
        if stage == "writing vectors" and done == 0:
            product.title = "Renamed while the vectors were computed"
            product.save()

    pipeline.refresh_vectors(progress=Progress(listeners=(save_meanwhile,)))
    assert embedding.sync_all_products().as_dict() == {"written": 1, "removed": 0, "skipped": ""}
    assert embedding.sync_all_products().written == 0


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("read", ["sync", "embed"])
def test_a_save_committed_after_a_read_that_could_not_see_it_is_stale_in_its_vector(committed_shop, read):
    """A save stamps its product when its transaction runs, but a read sees it only once it
    commits: a catalogue import's long transaction that commits after a sync or a full embed
    read the product left a vector of the old content stamped later than the save, never
    found stale."""
    pipeline.retrain()
    product = copy_product(committed_shop.products[0], "late-arrival")  # embedded from its content
    assert embedding.sync_all_products().written == 1
    importer = connections.create_connection("default")
    importer.set_autocommit(False)
    try:
        with importer.cursor() as cursor:
            cursor.execute("SELECT 1")  # the import's transaction began; auto_now stamps later saves
            cursor.execute(
                f"UPDATE {Product._meta.db_table} SET title = %s, updated_at = %s WHERE id = %s",
                [committed_shop.products[-1].title, timezone.now(), product.pk],
            )
            if read == "sync":
                assert embedding.sync_products([product.pk]).written == 1
            else:
                pipeline.refresh_vectors()
            version = queries.active_version(fresh=True)
            before = vector_of(product, version)  # of the title the read saw
            importer.commit()
    finally:
        importer.close()
    assert embedding.sync_all_products().as_dict() == {"written": 1, "removed": 0, "skipped": ""}
    assert not np.allclose(vector_of(product, version), before)
    assert embedding.sync_all_products().written == 0


@pytest.fixture
def default_queue(monkeypatch):
    """The tests' in-memory broker's `default` queue, as a worker would read it, emptied first."""
    monkeypatch.setattr(indexing, "_broker_failed_at", None)  # another test's broker outage
    with current_app.connection_for_write() as connection:
        queue = connection.SimpleQueue(queues.DEFAULT)
        queue.clear()
        yield queue
        queue.clear()
        queue.close()


def run_queued(queue):
    """Take the next message off `queue` and run its task (one of `tasks`) here, as a worker would."""
    message = queue.get(timeout=1)
    message.ack()
    args, kwargs, _ = message.decode()
    return message.headers["task"], current_app.tasks[message.headers["task"]].apply(args, kwargs).get()


def nothing_queued(queue) -> bool:
    """Whether `queue` holds no message (Redis keeps no empty queue, so `qsize()` cannot say)."""
    try:
        queue.get(block=False)
    except queue.Empty:
        return True
    return False


def test_activation_queues_a_sync_that_embeds_the_products_saved_meanwhile(
    shop, default_queue, django_capture_on_commit_callbacks
):
    """Saves while a version is made go to the version that serves then; once the new one is
    activated, the sync it queues gives it their vectors, before the scheduled one runs."""
    serving = pipeline.retrain().version
    made = pipeline.retrain(activate=False).version
    pipeline.embed_version(made)
    created = copy_product(shop.products[0], "created-meanwhile")
    edited = shop.products[1]
    edited.title = "Edited meanwhile"
    edited.save()
    embedding.sync_products([str(created.pk), str(edited.pk)], serving)  # their on-save embed
    assert not ProductVector.objects.filter(model_version=made, product_id=str(created.pk)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        activation.activate(made)
    task, result = run_queued(default_queue)
    assert task == tasks.sync_product_vectors.name
    assert result == {"written": 2, "removed": 0, "skipped": ""}
    assert ProductVector.objects.filter(model_version=made, product_id=str(created.pk)).exists()
    with django_capture_on_commit_callbacks(execute=True):
        activation.activate(made)  # active already: nothing changes, nothing is queued
    assert nothing_queued(default_queue)


def test_an_activation_while_the_broker_is_down_serves_and_leaves_the_sync_to_the_schedule(
    shop, default_queue, django_capture_on_commit_callbacks, caplog
):
    pipeline.retrain()
    made = pipeline.retrain(activate=False).version
    pipeline.embed_version(made)
    indexing._broker_failed_at = time.monotonic()  # a save found the broker down a moment ago
    with django_capture_on_commit_callbacks(execute=True):
        activation.activate(made)
    assert queries.active_version(fresh=True).pk == made.pk
    assert nothing_queued(default_queue)
    assert (
        f"Not queuing a sync of the product vectors of model version {made.pk}: the broker was down"
        in caplog.text
    )
    assert (
        "the next scheduled sync_product_vectors embeds the products saved while it was made" in caplog.text
    )


def test_evaluate_compares_every_recommender_on_one_split(shop):
    lines = []
    rows = training.evaluate(log=lines.append)
    assert [r["model"] for r in rows] == ["two_tower", "popularity", "item_knn", "ease", "als"]
    assert all(0 <= r["NDCG@10"] <= r["HR@10"] <= 1 for r in rows)
    assert "| two_tower |" in lines[-1]
    folds = training.evaluate(folds=2, models=["popularity", "item_knn"], log=lines.append)
    assert [r["model"] for r in folds] == ["popularity", "item_knn"]
    with pytest.raises(ValueError, match="Unknown split"):
        training.evaluate(split="random")


@pytest.mark.django_db
def test_evaluate_refuses_folds_with_the_temporal_split_which_they_would_replace():
    """Folds judge held-out shoppers on their last new product: with them, "temporal" was
    silently ignored. Refused before anything is read."""
    with pytest.raises(ValueError) as raised:
        training.evaluate(split="temporal", folds=3)
    assert str(raised.value) == (
        "Folds hold out groups of shoppers and judge each on their last new product, as the leave-one-out "
        "split does; they do not apply to the temporal split. Give folds (--folds) or the temporal split "
        "(--split), not both."
    )


def test_the_model_is_stored_whatever_rank_the_environment_names(shop, monkeypatch):
    """Only the writer of a model directory skips on a rank other than 0 (every rank holds the
    same weights); the version's file is made in memory, so a process whose environment says
    RANK=1 (a scheduler's variable, torchrun's) still stores and loads it."""
    monkeypatch.setenv("RANK", "1")
    version = training.train_model()
    loaded = artifacts.load(version)
    assert sorted(loaded.items.keys) == sorted(str(p.pk) for p in shop.products)
