"""Querysets compiled once and run again with other keys (`serving.compiled`)."""

from __future__ import annotations

import datetime
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from psycopg.postgres import types
from psycopg.pq import Format

from recommendations.serving import compiled
from recommendations.serving.compiled import KeyIn
from recommendations.sql import array_literal, native_timestamps
from shop.models import Product


def _titles(keys: list[str]):
    return Product.objects.filter(KeyIn(Product, keys)).order_by("pk").values_list("pk", "title", "price")


def _with_store(keys: list[str]):
    return Product.objects.filter(KeyIn(Product, keys)).select_related("store", "category").order_by("pk")


def test_rows_match_the_orm_for_every_set_of_keys(catalog):
    query = compiled.KeyedQuery(_titles)
    for titles in (["Argan shampoo", "Cuticle oil"], ["Vitamin C serum"], []):
        keys = catalog.ids(*titles)
        assert query.rows(keys) == list(_titles(keys))
    # Values come back converted as the ORM converts them (price is a Decimal, not a string).
    assert query.rows(catalog.ids("Argan shampoo"))[0][2] == catalog.products["Argan shampoo"].price


def test_objects_come_with_their_related_objects_in_one_query(catalog):
    query = compiled.KeyedQuery(_with_store)
    keys = catalog.ids("Matte top coat", "Clay face mask")
    with CaptureQueriesContext(connection) as captured:
        found = query.objects(keys)
        names = [(p.title, p.store.name, p.category.name) for p in found]
    assert len(captured) == 1
    assert sorted(names) == [
        ("Clay face mask", "Face Store", "Face"),
        ("Matte top coat", "Nails Store", "Nails"),
    ]
    assert found == list(_with_store(keys))


def test_a_query_must_take_its_keys_as_one_parameter(db):
    with pytest.raises(ValueError, match="exactly one parameter"):
        compiled.KeyedQuery(lambda keys: Product.objects.filter(pk__in=["1", "2"]))


def test_compiled_once_per_thread_and_shape_and_again_after_a_settings_change(catalog, settings):
    first = compiled.keyed_query(("titles",), _titles)
    assert compiled.keyed_query(("titles",), _titles) is first
    assert compiled.keyed_query(("other",), _titles) is not first

    elsewhere = []
    thread = threading.Thread(target=lambda: elsewhere.append(compiled.keyed_query(("titles",), _titles)))
    thread.start()
    thread.join()
    assert elsewhere[0] is not first  # a compiler belongs to its thread's connection

    settings.RECOMMENDATIONS = {**settings.RECOMMENDATIONS, "BOOST_RULES": []}
    again = compiled.keyed_query(("titles",), _titles)
    assert again is not first
    assert again.rows(catalog.ids("Red nail polish")) == list(_titles(catalog.ids("Red nail polish")))


@pytest.mark.django_db
@pytest.mark.parametrize("sql_type", ["text", "varchar"])
@pytest.mark.parametrize(
    "keys",
    [
        ["1", "42", "a,b", 'say "hi"', "back\\slash", "{braces}", "with space", "NULL", ""],
        ["1", "42", "a,b", "{braces}", "with space", "NULL", ""],  # nothing to escape: the quick path
    ],
)
def test_keys_sent_as_one_array_literal_read_back_exactly(sql_type, keys):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT unnest(%s::{sql_type}[])", [array_literal(keys)])
        assert [row[0] for row in cursor.fetchall()] == keys
        cursor.execute(
            "SELECT 7::bigint = ANY(%s::bigint[]), 8::bigint = ANY(%s::bigint[])", [array_literal([7, 9])] * 2
        )
        assert cursor.fetchone() == (True, False)


def test_objects_read_timestamps_as_the_orm_does(catalog):
    keys = catalog.ids("Matte top coat", "Clay face mask")
    found = compiled.KeyedQuery(_with_store).objects(keys)
    expected = list(_with_store(keys))
    assert [(p.created_at, p.store.created_at) for p in found] == [
        (p.created_at, p.store.created_at) for p in expected
    ]
    assert all(p.created_at.tzinfo is datetime.UTC for p in found)


def test_native_timestamps_parse_in_c_only_where_the_result_is_the_same(db, settings):
    def read() -> tuple[datetime.datetime, type]:
        with native_timestamps(connection.cursor()) as cursor:
            cursor.execute("SELECT %s::timestamptz", ["2026-03-01 10:00+02"])
            loader = cursor.cursor.adapters.get_loader(types["timestamptz"].oid, Format.TEXT)
            return cursor.fetchone()[0], loader

    # psycopg swaps its C implementation in for its own Python class, never for Django's subclass.
    value, loader = read()
    assert value == datetime.datetime(2026, 3, 1, 8, tzinfo=datetime.UTC) and value.tzinfo is datetime.UTC
    assert loader.__module__.startswith("psycopg_binary")
    settings.USE_TZ = False  # Django's loader gives naive datetimes then: it stays
    value, loader = read()
    assert value.tzinfo is None and not loader.__module__.startswith("psycopg_binary")
