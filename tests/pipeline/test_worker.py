"""The pipeline through a real Celery worker process: retrain -> activate -> serve, the lock,
a worker killed while embedding, products embedded on commit, and a broker that is down."""

import os
import signal
import subprocess
import sys

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.db import connections
from django.urls import reverse

from recommendations import pipeline, tasks
from recommendations.locks import advisory_lock
from recommendations.models import ModelStatus, ModelVersion, ProductVector, StoreVector, UserVector
from recommendations.vectors import queries
from shop.models import Product
from tests.pipeline.data import copy_product
from tests.pipeline.worker import ROOT, wait_for

pytestmark = [pytest.mark.celery, pytest.mark.slow]


@pytest.fixture(autouse=True)
def shared_media(worker, settings):
    """The worker and this process read each other's model artifacts."""
    settings.MEDIA_ROOT = worker.env["MEDIA_ROOT"]


def active_version_of(task_id):
    return ModelVersion.objects.filter(task_id=task_id, status=ModelStatus.ACTIVE).first()


def top_products(version, user):
    return [
        p for p, _ in queries.nearest_products(queries.user_vector(user.pk, version), 10, version=version)
    ]


def test_retrain_now_in_the_admin_activates_a_version_that_serves(worker, committed_shop, client):
    shop = committed_shop
    client.force_login(get_user_model().objects.create_superuser("boss", "b@example.com", "pw"))
    page = client.post(reverse("admin:recommendations_modelversion_retrain"), follow=True)
    assert any("Retrain queued" in str(m) for m in page.context["messages"])
    version = wait_for(
        lambda: ModelVersion.objects.filter(status=ModelStatus.ACTIVE).first(),
        what="the retrained version to be active",
    )
    assert version.task_id and version.progress["stage"] == "done" and version.metrics["NDCG@10"] >= 0
    assert ProductVector.objects.filter(model_version=version).count() == len(shop.products)
    user = shop.users[0]
    own = shop.store_product_ids(shop.taste[user.pk])
    assert np.mean([p in own for p in top_products(version, user)]) > 0.5
    assert queries.nearest_stores(queries.user_vector(user.pk, version), 1, version=version)


def test_a_second_retrain_exits_while_one_holds_the_lock(worker, committed_shop):
    start = len(worker.log())
    with advisory_lock() as acquired:  # as if a retrain were running on another machine
        assert acquired
        tasks.retrain.delay()
        worker.wait_for_log(r"Retrain skipped: another retrain or embed is running", after=start)
    assert not ModelVersion.objects.exists()
    # Through Celery's handler once, not a second time through one of the app's own.
    assert worker.log()[start:].count("Retrain skipped: another retrain or embed is running") == 1


def test_worker_killed_while_embedding_retries_and_old_version_keeps_serving(worker, committed_shop):
    shop = committed_shop
    old = pipeline.retrain().version
    user = shop.users[1]
    before = top_products(old, user)
    # Hold the vector table so the worker's write blocks mid-embedding; readers are not blocked.
    blocker = connections.create_connection("default")
    blocker.set_autocommit(False)
    with blocker.cursor() as cursor:
        cursor.execute("LOCK TABLE recommendations_productvector IN SHARE MODE")
    try:
        result = tasks.retrain.delay()
        wait_for(
            lambda: ModelVersion.objects.filter(
                task_id=result.id, progress__stage="writing vectors"
            ).exists(),
            what="the worker to start writing vectors",
        )
        victim = worker.pool_pids()
        assert len(victim) == 1
        os.kill(victim[0], signal.SIGKILL)
        worker.wait_for_log(r"WorkerLostError|exited prematurely")
        # Meanwhile the old version serves, complete and unchanged.
        assert queries.active_version(fresh=True).pk == old.pk
        assert top_products(old, user) == before
    finally:
        blocker.rollback()
        blocker.close()
    new = wait_for(lambda: active_version_of(result.id), what="the retried task to activate its version")
    # The retry resumed the trained version instead of training a second one.
    assert list(ModelVersion.objects.filter(task_id=result.id).values_list("pk", flat=True)) == [new.pk]
    for model, count in ((ProductVector, len(shop.products)), (StoreVector, len(shop.stores))):
        assert model.objects.filter(model_version=new).count() == count  # no duplicates
        assert set(model.objects.values_list("model_version_id", flat=True)) == {old.pk, new.pk}  # no orphans
    assert UserVector.objects.filter(model_version=new).count() == len(shop.users)
    old.refresh_from_db()
    assert old.status == ModelStatus.READY


def test_saved_product_is_embedded_on_commit(worker, committed_shop):
    version = pipeline.retrain().version
    template = committed_shop.products[5]
    product = copy_product(template, "fresh-arrival")
    wait_for(
        lambda: ProductVector.objects.filter(model_version=version, product_id=str(product.pk)).exists(),
        timeout=30,
        what="the new product's vector",
    )
    assert queries.similar_products(str(product.pk), 5)


def test_broker_down_on_save_is_logged_and_the_scheduled_sync_catches_up(worker, committed_shop):
    version = pipeline.retrain().version
    category, store = committed_shop.products[0].category, committed_shop.products[0].store
    script = (
        "import django; django.setup()\n"
        "from shop.models import Product\n"
        f"p = Product.objects.create(title='Offline lipstick', slug='offline', category_id={category.pk}, "
        f"store_id={store.pk}, price=9, stock=1)\n"
        "print(p.pk)\n"
        # The next save does not wait for the broker's connection attempts again.
        f"Product.objects.create(title='Offline gloss', slug='offline-2', category_id={category.pk}, "
        f"store_id={store.pk}, price=9, stock=1)\n"
    )
    env = {**worker.env, "CELERY_BROKER_URL": "redis://127.0.0.1:1/0"}  # nothing listens there
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("Could not queue embedding of 1 product(s)") == 1
    assert "Connection refused. " in done.stderr and ".. " not in done.stderr  # redis-py's own period
    assert "Not queuing embedding of 1 product(s): the broker was down" in done.stderr
    product_id = done.stdout.strip().splitlines()[-1]
    assert Product.objects.filter(pk=product_id).exists()
    assert not ProductVector.objects.filter(product_id=product_id).exists()
    tasks.sync_product_vectors.delay()
    wait_for(
        lambda: ProductVector.objects.filter(model_version=version, product_id=product_id).exists(),
        timeout=30,
        what="the scheduled sync to embed the product",
    )
