"""The visitor's history read by serving: bounded by SERVING_HISTORY_DAYS, pruned by month."""

from __future__ import annotations

import datetime as dt

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from recommendations.events import partitions
from recommendations.models import ModelStatus, ModelVersion, ProductVector
from recommendations.serving import history, products, realtime
from recommendations.serving.types import Audience, Options
from tests.serving.conftest import add_event, vector_of


def _bounded(settings, days):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "SERVING_HISTORY_DAYS": days}


def test_events_older_than_the_window_are_not_read(catalog, settings):
    _bounded(settings, 365)
    add_event(catalog, "view", "Argan shampoo", user="bob", ago=dt.timedelta(days=400))
    add_event(catalog, "purchase", "Cuticle oil", user="bob", ago=dt.timedelta(days=400))
    add_event(catalog, "view", "Red nail polish", user="bob", ago=dt.timedelta(days=300))
    bob = catalog.users["bob"]

    audience = Audience(user=bob)
    assert catalog.titles(history.recent_history(audience).product_ids) == ["Red nail polish"]
    assert history.purchases(audience) == []
    viewed = products.recently_viewed(Audience(user=bob), Options())
    assert [rec.product_id for _, rec in viewed.items] == catalog.ids("Red nail polish")

    _bounded(settings, None)
    audience = Audience(user=bob)
    assert catalog.titles(history.recent_history(audience).product_ids) == [
        "Red nail polish",
        "Cuticle oil",
        "Argan shampoo",
    ]
    assert catalog.titles(e.product_id for e in history.purchases(audience)) == ["Cuticle oil"]


def _partitions_in_plan(audience: Audience) -> set[str]:
    """Month partitions the visitor's read would touch, from EXPLAIN of the SQL it ran."""
    with CaptureQueriesContext(connection) as captured:
        history.load(audience)
    (query,) = [q for q in captured.captured_queries if "recommendations_event" in q["sql"]]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + query["sql"])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    return {name for name in partitions.month_partitions().values() if name in plan}


def test_old_months_are_pruned_when_planning(catalog, settings):
    if not partitions.is_partitioned():
        pytest.skip("the events table is not partitioned on this database")
    now = timezone.now()
    partitions.ensure_partitions(partitions.months_between(now - dt.timedelta(days=3 * 365), now))
    months = partitions.month_partitions()
    recent = {
        name for month, name in months.items() if month >= partitions.month_of(now - dt.timedelta(days=90))
    }

    _bounded(settings, 90)
    touched = _partitions_in_plan(Audience(user=catalog.users["bob"]))
    assert touched and touched <= recent

    _bounded(settings, None)
    assert len(_partitions_in_plan(Audience(user=catalog.users["bob"]))) >= 36


@pytest.mark.parametrize("days", [0, -5, "30", True])
def test_a_bad_window_is_a_clear_configuration_error(catalog, settings, days):
    _bounded(settings, days)
    with pytest.raises(ImproperlyConfigured, match="SERVING_HISTORY_DAYS"):
        history.load(Audience(user=catalog.users["bob"]))


def test_the_read_brings_the_active_versions_vectors_of_the_history(catalog, model):
    add_event(catalog, "view", "Vitamin C serum", user="bob")
    # Too old to count in the taste: no vector is brought for it.
    add_event(catalog, "view", "Argan shampoo", user="bob", ago=dt.timedelta(days=3))
    serum = catalog.id("Vitamin C serum")
    audience = Audience(user=catalog.users["bob"])
    with CaptureQueriesContext(connection) as captured:
        taste = realtime.current_taste(model, audience)
    assert history.recent_history(audience).vectors.keys() == {serum}
    assert taste.basis == "session" and list(taste.history_vectors) == [serum]
    assert taste.history_vectors[serum].tolist() == pytest.approx(vector_of(catalog, "Vitamin C serum"))
    reads = [q["sql"] for q in captured.captured_queries if "recommendations_productvector" in q["sql"]]
    assert len(reads) == 1 and "recommendations_event" in reads[0]

    # A user with a stored vector gets it from the same read.
    add_event(catalog, "view", "Vitamin C serum", user="alice")
    alice = Audience(user=catalog.users["alice"])
    with CaptureQueriesContext(connection) as captured:
        blended = realtime.current_taste(model, alice)
    assert blended.basis == "realtime"
    assert history.recent_history(alice).user_vector.tolist() == [0, 1, 0, 0]
    (read,) = [q["sql"] for q in captured.captured_queries if "recommendations_uservector" in q["sql"]]
    assert "recommendations_event" in read

    # Another version (an experiment's) is not what the read brought: its vectors are read.
    other = ModelVersion.objects.create(algorithm="two_tower", status=ModelStatus.READY, dimensions=4)
    ProductVector.objects.create(model_version=other, product_id=serum, embedding=[0, 0, 0, 1])
    assert realtime.current_taste(other, audience).history_vectors[serum].tolist() == [0, 0, 0, 1]


@pytest.mark.parametrize("minutes", [1.0, 60.0, 1e12])
def test_events_count_for_a_while_set_by_the_half_life(settings, minutes):
    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "REALTIME_HALF_LIFE_MINUTES": minutes}
    span = timezone.now() - history.counting_since()
    # The heaviest default event (a purchase, 5) takes log2(5 / 0.001) = 12.3 half-lives to fall
    # under the weight that still counts; a half-life of ages is capped at a century.
    assert span.total_seconds() / 60 == pytest.approx(
        min(12.29 * minutes, history.MAX_COUNTING_MINUTES), rel=0.01
    )


def test_a_removal_takes_back_the_latest_adds_of_its_product_unit_by_unit():
    now = timezone.now()

    def e(pk, kind, product, value=None):
        return history.HistoryEvent(pk, kind, product, now - dt.timedelta(minutes=10 - pk), value)

    events = [  # newest first
        e(7, "add_to_cart", "b"),
        e(6, "remove_from_cart", "b", 1),
        e(5, "add_to_cart", "b"),
        e(4, "remove_from_cart", "a", 1),
        e(3, "add_to_cart", "a", 1),
        e(2, "add_to_cart", "a", 2),
        e(1, "view", "a"),
    ]
    settled = history.History.of(events)
    # The removal of "a" took back its latest add (one unit); the two units before stay in
    # the cart. "b" went in, out, and in again: only the last add stands.
    assert [(x.id, x.event_type) for x in settled.events] == [
        (7, "add_to_cart"),
        (5, "view"),
        (3, "view"),
        (2, "add_to_cart"),
        (1, "view"),
    ]
    partly = history.History.of([e(3, "remove_from_cart", "a", 1), e(2, "add_to_cart", "a", 2)])
    assert [(x.id, x.event_type, x.value) for x in partly.events] == [(2, "add_to_cart", 2)]
    assert partly.fingerprint == "3"
