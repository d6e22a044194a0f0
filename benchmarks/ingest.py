"""Ingestion throughput: REST batches and bulk imports, each beside a raw-COPY baseline.

    python benchmarks/ingest.py [--rest-events 20000] [--import-rows 200000]

Runs on a throwaway database (`test_shop_bench`) of the embedded server, created and dropped
here. Each figure is printed next to two plain COPYs of the very same rows into the same
events table, timed in the same process, so the ratios say what validation, authentication,
JSON and deduplication cost on this machine, whatever else it is busy with: text COPY (the
baseline of the first measurements) and binary COPY (the faster one, which the importers use).

1. REST: `POST /api/events/` through Django's test client (middleware, API-key
   authentication, throttling, validation, lookups, one `INSERT ... ON CONFLICT`), 500 events
   per request, from `--clients` threads at once (each with its own database connection, as
   server workers have).
2. Bulk import, generic: `import_event_file` on a CSV in the REST JSON shape (full
   validation, product/user checks, binary COPY).
3. Bulk import, dataset: `import_dataset_events` on the same rows written in the Amazon
   Beauty format (source ids mapped to products and lightweight users, binary COPY).

Each import runs first into an empty table, creating the monthly partitions its rows need
(and, for the dataset, its users), then `--rounds` times again after emptying the table, when
they exist, as for a regular import of recent events (the daily task creates the coming months
ahead), each round beside its own raw COPYs. Those lines print the median round and the range:
on a 2-core machine one round's rate moves by a third from minute to minute, raw COPY's too.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import gzip
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.config.settings")
os.environ.setdefault("TEST_DB_SUFFIX", "_bench")

import django  # noqa: E402
import orjson  # noqa: E402

django.setup()

import psycopg  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_databases, teardown_databases  # noqa: E402
from django.utils import timezone  # noqa: E402
from psycopg.types.json import Jsonb  # noqa: E402

from recommendations.events.importers import import_dataset_events, import_event_file  # noqa: E402
from recommendations.events.rows import EventRow  # noqa: E402
from recommendations.models import ApiKey, Event, EventKey  # noqa: E402
from shop.catalog_import import import_dataset_catalog  # noqa: E402

BATCH = 500
COLUMNS = (
    "event_id, event_type, user_id, session_id, product_id, store_id, query, value, revenue, "
    "timestamp, context, recommendation_id, created_at"
)


def truncate() -> None:
    """Empty the events table and its key table (ids left there would count as stored)."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {Event._meta.db_table}, {EventKey._meta.db_table}")


def copy_types() -> list[int]:
    """Type oids of the COPY columns, which binary COPY needs."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT attname, atttypid::int FROM pg_attribute WHERE attrelid = %s::regclass AND attnum > 0",
            [Event._meta.db_table],
        )
        oids = dict(cursor.fetchall())
    return [oids[name.strip()] for name in COLUMNS.split(",")]


def raw_copy(rows: list[tuple], binary: bool = False) -> float:
    """Rows/s of a bare COPY of already-typed rows into the (emptied) events table.

    Text (contexts written by `json.dumps`, the first baseline) or binary (values in their
    binary form, contexts encoded by orjson through psycopg's `Jsonb`): the fastest plain COPY.
    """
    truncate()
    types = copy_types() if binary else None
    connection.ensure_connection()
    started = time.perf_counter()
    with transaction.atomic(), psycopg.Cursor(connection.connection) as cursor:
        now = timezone.now()
        options = " (FORMAT BINARY)" if binary else ""
        with cursor.copy(f"COPY {Event._meta.db_table} ({COLUMNS}) FROM STDIN{options}") as copy:
            if binary:
                copy.set_types(types)
            for row in rows:
                context = Jsonb(row[10], dumps=orjson.dumps) if binary else json.dumps(row[10])
                copy.write_row((*row[:10], context, row[11], now))
    rate = len(rows) / (time.perf_counter() - started)
    truncate()
    return rate


def baselines(rows: list[tuple]) -> tuple[float, float]:
    """Text and binary raw COPY of the same rows."""
    return raw_copy(rows), raw_copy(rows, binary=True)


def stored_rows() -> list[tuple]:
    """The stored events as COPY rows, to replay the identical data in the baseline."""
    return list(Event.objects.order_by("pk").values_list(*EventRow._fields))


def make_catalogue(folder: Path, products: int, users: int) -> tuple[list[str], list[int]]:
    """An Amazon-format catalogue imported into the shop; returns product keys and user ids."""
    brands = [f"Brand {i}" for i in range(40)]
    with (folder / "items.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(
            ["item_id", "asin", "title", "brand", "categories", "price", "sales_rank", "sales_type"]
        )
        for i in range(products):
            path = json.dumps(["Beauty", f"Section {i % 6}", f"Shelf {i % 30}"])
            writer.writerow(
                [i, f"A{i:09d}", f"Product {i}", brands[i % 40], path, f"{5 + i % 90}.99", i, "Beauty"]
            )
    import_dataset_catalog("amazon-beauty", folder)
    from django.contrib.auth import get_user_model

    User = get_user_model()
    User.objects.bulk_create([User(username=f"bench{i}") for i in range(users)])
    from shop.models import Product

    return [str(pk) for pk in Product.objects.values_list("pk", flat=True)], list(
        User.objects.values_list("pk", flat=True)
    )


def rest_events(count: int, products: list[str], users: list[int], rng: random.Random) -> list[dict]:
    now = dt.datetime.now(dt.UTC)
    events = []
    for i in range(count):
        kind = rng.choices(
            ["view", "add_to_cart", "purchase", "search", "impression", "rating"], [70, 10, 5, 5, 5, 5]
        )[0]
        event = {
            "event_id": uuid.uuid4().hex,
            "event_type": kind,
            "session_id": f"s{i // 20}",
            "timestamp": (now - dt.timedelta(seconds=count - i)).isoformat(),
            "context": {"page": f"/product/{i % 997}/", "device": "mobile" if i % 3 else "desktop"},
        }
        if i % 2:
            event["user_id"] = rng.choice(users)
        if kind in ("view", "add_to_cart", "purchase", "rating"):
            event["product_id"] = rng.choice(products)
        if kind == "purchase":
            event.update(value=1 + i % 3, revenue=f"{10 + i % 50}.50")
        elif kind == "rating":
            event["value"] = 1 + i % 5
        elif kind == "search":
            event["query"] = f"red lipstick {i % 40}"
        elif kind == "impression":
            event.update(products=rng.sample(products, 10), recommendation_id=f"r{i}")
        events.append(event)
    return events


def bench_rest(
    count: int, products: list[str], users: list[int], rng: random.Random, clients: int
) -> tuple[list[float], float, float]:
    """`clients` threads, each with its own test client and database connection, share the batches;
    returns ([events/s], text COPY, binary COPY) like the imports' lines."""
    _, key = ApiKey.objects.create_key("bench", ["events:write"])
    events = rest_events(count, products, users, rng)
    bodies = [json.dumps({"events": events[i : i + BATCH]}) for i in range(0, count, BATCH)]
    headers = {"content_type": "application/json", "HTTP_AUTHORIZATION": f"Api-Key {key}"}

    def send(share: list[str]) -> None:
        client = Client()
        try:
            for body in share:
                response = client.post("/api/events/", body, **headers)
                assert response.status_code == 200, response.content[:500]
        finally:
            connection.close()

    send(bodies[:1])  # warms up imports and caches; measure from a clean table
    truncate()
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(send, [bodies[i::clients] for i in range(clients)]))
    rate = count / (time.perf_counter() - started)
    assert Event.objects.count() == count
    return [rate], *baselines(stored_rows())


def bench_generic_import(
    folder: Path, rows: int, products: list[str], users: list[int], rng: random.Random, rounds: int
):
    path = folder / "events.csv"
    start = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["event_type", "product_id", "user_id", "value", "timestamp"])
        for i in range(rows):
            when = (start + dt.timedelta(seconds=37 * i)).isoformat()
            writer.writerow(["purchase", rng.choice(products), rng.choice(users), 1, when])
    return _rounds(lambda: import_event_file(path), rows, rounds)


def bench_dataset_import(folder: Path, rows: int, products: int, rounds: int):
    with gzip.open(folder / "interactions.csv.gz", "wt", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "item_id", "reviewer_id", "asin", "timestamp", "seq_index"])
        for i in range(rows):
            user, position = divmod(i, 9)  # nine distinct products per reviewer, as in a 5-core set
            asin = f"A{(user * 7 + position * 131) % products:09d}"
            writer.writerow(
                [
                    user,
                    0,
                    f"R{user:08d}",
                    asin,
                    1300000000 + 86400 * (i % 900),
                    i % 9,
                ]
            )
    return _rounds(lambda: import_dataset_events("amazon-beauty", folder), rows, rounds)


def _rounds(run_import, rows: int, rounds: int) -> list[tuple[str, list[float], float, float]]:
    """The first import, then `rounds` imports into the emptied table, each followed by the
    raw COPYs of the same rows; each line: (label, the import's rates, text COPY, binary COPY)."""

    def imported() -> float:
        truncate()
        result = run_import()
        assert result.stored == rows, result
        return result.rate

    first = imported()
    again, text, binary = [], [], []
    for _ in range(rounds):
        again.append(imported())
        plain, fast = baselines(stored_rows())
        text.append(plain)
        binary.append(fast)
    median_text, median_binary = statistics.median(text), statistics.median(binary)
    return [
        ("", [first], median_text, median_binary),
        (", months already there", again, median_text, median_binary),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rest-events", type=int, default=20_000)
    parser.add_argument("--import-rows", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=5_000)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--clients", type=int, default=2, help="concurrent REST clients (threads)")
    parser.add_argument("--rounds", type=int, default=3, help="imports into existing months, per format")
    args = parser.parse_args()
    rng = random.Random(1)
    old_config = setup_databases(verbosity=0, interactive=False)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            products, users = make_catalogue(folder, args.products, args.users)
            rows = args.import_rows
            lines = [
                (
                    f"REST, 500/batch, {args.clients} clients",
                    *bench_rest(args.rest_events, products, users, rng, args.clients),
                ),
                *(
                    (f"Bulk import, CSV{label}", *figures)
                    for label, *figures in bench_generic_import(
                        folder, rows, products, users, rng, args.rounds
                    )
                ),
                *(
                    (f"Bulk import, Amazon format{label}", *figures)
                    for label, *figures in bench_dataset_import(folder, rows, args.products, args.rounds)
                ),
            ]
    finally:
        teardown_databases(old_config, verbosity=0)
    print(
        f"{'path':<50} {'events/s':>10} {'COPY text':>10} {'ratio':>6} {'COPY binary':>12} {'ratio':>6}"
        f"  {'rounds (events/s)'}"
    )
    for name, rates, text, binary in lines:
        rate = statistics.median(rates)
        ratios = f"{text:>10,.0f} {rate / text:>6.2f} {binary:>12,.0f} {rate / binary:>6.2f}"
        spread = f"  {len(rates)}: {min(rates):,.0f}-{max(rates):,.0f}" if len(rates) > 1 else ""
        print(f"{name:<50} {rate:>10,.0f} {ratios}{spread}")


if __name__ == "__main__":
    main()
