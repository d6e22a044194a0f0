"""Overlapping batches replayed at the same moment from several clients: each event is stored once."""

import json
import threading

import pytest
from django.db import connection
from django.test import Client

from recommendations.models import ApiKey, Event
from shop.models import Category, Product, Store
from tests.waiting import run_behind_transaction


@pytest.mark.django_db(transaction=True)
def test_concurrent_overlapping_batches_store_each_event_once():
    store = Store.objects.create(name="S", slug="s")
    category = Category.objects.create(name="C")
    products = [
        Product.objects.create(title=f"P{i}", slug=f"p{i}", category=category, store=store, price=1, stock=1)
        for i in range(5)
    ]
    _, key = ApiKey.objects.create_key("replayer", ["events:write"])
    all_ids = [f"evt-{i:03d}" for i in range(120)]
    # Six clients, each sending a window of 60 ids that overlaps its neighbours', in shuffled order.
    batches = [
        all_ids[start : start + 60][::step]
        for start, step in zip((0, 20, 40, 60, 0, 30), (1, -1, 1, -1, -1, 1))
    ]
    barrier = threading.Barrier(len(batches))
    results: list[tuple[int, dict]] = []
    errors: list[BaseException] = []

    def send(ids):
        try:
            body = {
                "events": [
                    {"event_id": i, "event_type": "view", "product_id": str(products[hash(i) % 5].pk)}
                    for i in ids
                ]
            }
            client = Client()
            barrier.wait()
            for _ in range(2):  # and each replays its own batch once more
                response = client.post(
                    "/api/events/",
                    json.dumps(body),
                    content_type="application/json",
                    HTTP_AUTHORIZATION=f"Api-Key {key}",
                )
                results.append((response.status_code, response.json()))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=send, args=(ids,)) for ids in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert not errors, errors
    assert [status for status, _ in results] == [200] * 12
    assert sum(body["stored"] for _, body in results) == 120
    assert sorted(Event.objects.values_list("event_id", flat=True)) == all_ids


@pytest.mark.django_db(transaction=True)
def test_concurrent_imports_of_overlapping_rows_store_each_event_once(caplog):
    """Importer B looks for stored ids while A's COPY is still uncommitted, so its own COPY waits on
    A's keys and then hits the unique index; it falls back to INSERT ... ON CONFLICT and skips A's rows."""
    import datetime as dt

    from django.db import transaction

    from recommendations.events.ingestion import copy_rows
    from recommendations.events.rows import EventRow

    caplog.set_level("INFO", logger="recommendations.events.ingestion")
    now = dt.datetime.now(dt.UTC)

    def rows(ids):
        return [EventRow(f"imp-{i}", "search", None, "", "", "", "q", None, None, now, {}, "") for i in ids]

    def importer_b():
        with transaction.atomic():
            return copy_rows(rows(range(40, 100)))

    # B starts once A's COPY is in, uncommitted; A commits only once B is stuck behind its keys.
    stored = run_behind_transaction(lambda: copy_rows(rows(range(0, 60))), importer_b)
    assert stored == (60, 40)
    assert Event.objects.count() == 100
    assert "COPY met event ids stored concurrently" in caplog.text
