"""Serving reads vectors from a read replica; writes and the pipeline stay on the primary.

The `replica` alias of the test settings is a second connection to the same test database
(Django's TEST MIRROR), so the tests can see which connection each statement went through.
The tests are transactional: a mirror's connection only sees committed rows.
"""

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, router
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations import routers
from recommendations.models import ModelStatus, ModelVersion, ProductVector, ServedRecommendation
from recommendations.serving import products, stores
from recommendations.serving.attribution import flush_served
from recommendations.serving.types import Audience, Options
from recommendations.vectors import activation, queries
from shop.database import check_external_databases, replica_settings
from tests.serving.conftest import TITLES

uses_replica = pytest.mark.django_db(transaction=True, databases=["default", "replica"])

VECTOR_TABLES = ("recommendations_productvector", "recommendations_storevector", "recommendations_uservector")


@pytest.fixture
def replica(settings):
    """Serving configured as a host with DATABASE_REPLICA_URL would configure it."""
    settings.DATABASE_ROUTERS = [routers.ROUTER_PATH]
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "VECTOR_READ_DATABASE": "replica"}
    queries.clear_cache()
    return connections["replica"]


def sql(context: CaptureQueriesContext) -> str:
    return "\n".join(q["sql"] for q in context.captured_queries)


@uses_replica
def test_for_you_reads_the_active_version_and_vectors_from_the_replica(catalog, model, replica):
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        result = products.for_you(Audience(user=catalog.users["alice"]), Options(limit=3))

    assert set(catalog.titles(result.ids)) <= set(TITLES["Face"])  # alice's stored vector
    assert result.model_version_id == model.pk
    read = sql(on_replica)
    assert '"recommendations_modelversion"' in read
    assert '"recommendations_uservector"' in read and '"recommendations_productvector"' in read
    assert "hnsw.ef_search" in read  # the search settings are made on the replica's session
    assert not any(table in sql(on_primary) for table in VECTOR_TABLES)
    # The served list (a write) is recorded on the primary, by the writer thread.
    assert "INSERT" not in read and "UPDATE" not in read
    assert flush_served() and ServedRecommendation.objects.using("default").filter(
        pk=result.recommendation_id
    )


@uses_replica
def test_the_api_answers_from_the_replica(catalog, model, replica, client):
    client.force_login(catalog.users["alice"])
    with CaptureQueriesContext(replica) as on_replica:
        response = client.get("/api/recommendations/for-you/", {"limit": 3})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["model_version"] == model.pk
    assert {item["title"] for item in body["results"]} <= set(TITLES["Face"])
    assert '"recommendations_productvector"' in sql(on_replica)


@uses_replica
def test_similar_products_and_stores_read_vectors_from_the_replica(catalog, model, replica):
    alice = Audience(user=catalog.users["alice"])
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        similar = products.similar(catalog.id("Argan shampoo"), Audience(session_id="s"), Options(limit=3))
        for_alice = stores.stores_for_user(alice, Options(limit=1))
        like_hair = stores.similar_stores(str(catalog.stores["Hair"].pk), alice, Options(limit=2))

    assert set(catalog.titles(similar.ids)) <= set(TITLES["Hair"])
    assert for_alice.ids == [str(catalog.stores["Face"].pk)]
    assert str(catalog.stores["Hair"].pk) not in like_hair.ids
    assert '"recommendations_productvector"' in sql(on_replica)
    assert '"recommendations_storevector"' in sql(on_replica)
    assert not any(table in sql(on_primary) for table in VECTOR_TABLES)


@uses_replica
def test_rows_read_from_the_replica_are_written_to_the_primary(catalog, model, replica):
    version = queries.active_version()
    assert version._state.db == "replica"
    stored = queries.vector_rows(ProductVector).get(
        model_version=version, product_id=catalog.id("Cuticle oil")
    )

    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        stored.bias = 0.5
        stored.save(update_fields=["bias"])
        # A replica row related to a new row: allowed, and the new row goes to the primary.
        ProductVector.objects.create(model_version=version, product_id="new", embedding=[0, 0, 1, 0])

    assert not on_replica.captured_queries
    assert "UPDATE" in sql(on_primary) and "INSERT" in sql(on_primary)
    assert ProductVector.objects.filter(model_version=model, product_id="new").exists()
    assert ProductVector.objects.get(pk=stored.pk).bias == 0.5


@uses_replica
def test_the_pipeline_asks_the_primary_which_version_is_active(catalog, model, replica):
    with (
        CaptureQueriesContext(replica) as on_replica,
        CaptureQueriesContext(connections["default"]) as on_primary,
    ):
        assert queries.active_version(fresh=True).pk == model.pk
    assert not on_replica.captured_queries and '"recommendations_modelversion"' in sql(on_primary)

    # The primary's answer is not cached for serving, which asks its own database.
    with CaptureQueriesContext(replica) as on_replica:
        assert queries.active_version().pk == model.pk
    assert '"recommendations_modelversion"' in sql(on_replica)


@uses_replica
def test_serving_follows_an_activation_made_on_the_primary(catalog, model, replica):
    newer = ModelVersion.objects.create(
        algorithm="two_tower", status=ModelStatus.READY, dimensions=4, embedded_at=timezone.now()
    )
    ProductVector.objects.bulk_create(
        ProductVector(model_version=newer, product_id=catalog.id(title), embedding=[0, 0, 1, 0.1 * i])
        for i, title in enumerate(TITLES["Nails"])
    )
    assert queries.active_version().pk == model.pk

    activation.activate(newer)

    result = products.similar(catalog.id("Red nail polish"), Audience(session_id="s"), Options(limit=2))
    assert queries.active_version().pk == newer.pk
    assert result.model_version_id == newer.pk
    assert set(catalog.titles(result.ids)) <= set(TITLES["Nails"]) - {"Red nail polish"}


def test_migrations_never_run_on_the_replica(replica):
    assert router.allow_migrate("replica", "recommendations") is False
    assert router.allow_migrate("default", "recommendations") is True


def test_a_read_database_that_is_not_configured_stops_start_up(settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "VECTOR_READ_DATABASE": "reader"}
    with pytest.raises(ImproperlyConfigured, match=r"'reader' is not in DATABASES"):
        routers.validate_configuration()


def test_a_read_database_without_the_router_stops_start_up(settings):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "VECTOR_READ_DATABASE": "replica"}
    settings.DATABASE_ROUTERS = []
    with pytest.raises(ImproperlyConfigured, match=r"recommendations\.routers\.VectorReplicaRouter"):
        routers.validate_configuration()
    settings.DATABASE_ROUTERS = [routers.ROUTER_PATH]
    routers.validate_configuration()


def test_replica_url_is_optional_and_checked_when_set():
    assert replica_settings({}) is None
    # Reached once as the processes start (manage.py, gunicorn's master, Celery), not at every
    # settings import: a worker booting while the replica is down must still come up.
    unreachable = {"DATABASE_REPLICA_URL": "postgres://shop@127.0.0.1:1/shop"}
    assert replica_settings(unreachable)["PORT"] == 1
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_URL.*cannot be reached"):
        check_external_databases(unreachable)
    with pytest.raises(ImproperlyConfigured, match="DATABASE_REPLICA_URL must be a PostgreSQL URL"):
        replica_settings({"DATABASE_REPLICA_URL": "mysql://shop@db/shop"})


def test_replica_url_may_name_a_unix_socket_as_embedded_db_url_prints_it(settings):
    default = settings.DATABASES["default"]
    url = f"postgresql://{default['USER']}:@/{default['NAME']}?host={default['HOST']}"
    config = replica_settings({"DATABASE_REPLICA_URL": url, "DATABASE_CONN_MAX_AGE": "30"})
    assert config["NAME"] == default["NAME"] and config["OPTIONS"]["host"] == default["HOST"]
    assert config["CONN_MAX_AGE"] == 30 and config["CONN_HEALTH_CHECKS"]
