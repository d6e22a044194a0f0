"""Event ingestion against a live server: concurrent replays store each event once, and a
batch whose database connection is killed mid-insert leaves nothing behind."""

import json
import random
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from recommendations.models import ApiKey, Event
from shop.models import Category, Product, Store

pytestmark = pytest.mark.django_db(transaction=True)
N_PRODUCTS = 5


@pytest.fixture
def products():
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    return [
        str(
            Product.objects.create(
                title=f"Mug {i}", slug=f"mug-{i}", category=category, store=store, price=5, stock=3
            ).pk
        )
        for i in range(N_PRODUCTS)
    ]


@pytest.fixture
def send(live_server, products):
    """POST a batch of event ids to /api/events/ with an API key; returns (status, headers, body)."""
    _, raw_key = ApiKey.objects.create_key("loader", ["events:write"])

    def post(event_ids):
        events = [
            # Each id always carries the same content, as a client retrying a batch would send.
            {"event_id": eid, "event_type": "view", "product_id": products[int(eid[-4:]) % N_PRODUCTS]}
            for eid in event_ids
        ]
        request = urllib.request.Request(
            f"{live_server.url}/api/events/",
            data=json.dumps({"events": events}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Api-Key {raw_key}"},
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, dict(response.headers), json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), json.loads(error.read())

    return post


def test_eight_clients_replaying_overlapping_batches_store_every_event_once(send, products):
    ids = [f"ev-{i:04d}" for i in range(400)]

    def client(number):
        rng = random.Random(number)
        statuses = []
        for _replay in range(2):
            # Windows of 100 ids that overlap each other and the other clients' windows.
            for start in range(number * 25, number * 25 + 300, 50):
                batch = [ids[i % len(ids)] for i in range(start, start + 100)]
                rng.shuffle(batch)
                statuses.append(send(batch)[0])
        return statuses

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = [status for result in pool.map(client, range(8)) for status in result]

    assert set(statuses) <= {200, 201} and len(statuses) == 96
    stored = list(Event.objects.values_list("event_id", "product_id"))
    assert len(stored) == len(ids)
    assert sorted(stored) == [(eid, products[int(eid[-4:]) % N_PRODUCTS]) for eid in ids]


def test_a_batch_killed_mid_insert_leaves_no_partial_batch(send):
    batch = [f"crash-{i:04d}" for i in range(100)]
    table = Event._meta.db_table
    with connection.cursor() as cursor:
        # Stall on the 51st row of the batch, with 50 rows already written in the transaction.
        cursor.execute(
            "CREATE FUNCTION rec_test_stall() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN PERFORM pg_sleep(30); RETURN NEW; END $$"
        )
        cursor.execute(
            f"CREATE TRIGGER rec_test_stall BEFORE INSERT ON {table} FOR EACH ROW "
            "WHEN (NEW.event_id = 'crash-0050') EXECUTE FUNCTION rec_test_stall()"
        )
    try:
        answer = {}
        sender = threading.Thread(target=lambda: answer.update(result=send(batch)))
        sender.start()
        pid = wait_for_stalled_insert()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        sender.join(timeout=30)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"DROP TRIGGER IF EXISTS rec_test_stall ON {table}")
            cursor.execute("DROP FUNCTION IF EXISTS rec_test_stall()")

    status, headers, body = answer["result"]
    assert status == 503 and headers["Retry-After"].isdigit(), body
    assert not Event.objects.filter(event_id__startswith="crash-").exists()
    # The client retries as told; the same batch is then stored whole, once.
    assert send(batch)[0] in (200, 201) and send(batch)[2]["stored"] == 0
    assert Event.objects.filter(event_id__startswith="crash-").count() == 100


def wait_for_stalled_insert(timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                # The writer (COPY or INSERT, whichever ingestion uses) asleep in the trigger.
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
            )
            row = cursor.fetchone()
            if row:
                return row[0]
            time.sleep(0.05)
    raise AssertionError("the insert never reached the stalled row")
