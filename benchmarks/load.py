"""Mixed load: 70% recommendations, 25% events, 5% search, sustained, with no errors.

Serves the synthetic shop of `benchmarks/serving.py` (same data builder, its own database)
with gunicorn on loopback, and drives it from a second process with keep-alive clients
that pick each request by the mix: for-you, similar, trending and bought-together lists,
batches of 10 behaviour events (new ids, so each is stored), and personalised searches.
Prints requests/s, latency per kind and every non-2xx answer; exits 1 if there was any.

    python benchmarks/load.py                    # 5,000 products/users, 60 s, 16 clients
    python benchmarks/load.py --products 100000 --seconds 120
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import serving  # noqa: E402 - the shop builder and the gunicorn launcher

MIX = {"recommendations": 70, "events": 25, "search": 5}
EVENT_BATCH = 10


def plan(n_users: int, n_products: int, seed: int) -> list[tuple[str, str, str, bytes]]:
    """Requests in mix proportions: (kind, method, path, body); events get fresh ids when sent."""
    rng = random.Random(seed)
    nouns = [noun for nouns in serving.DEPARTMENTS.values() for noun in nouns]
    out = []
    for _ in range(5000):
        user, product = rng.randint(1, n_users), rng.randint(1, n_products)
        kind = rng.choices(list(MIX), list(MIX.values()))[0]
        if kind == "recommendations":
            path = rng.choice(
                [
                    f"/api/recommendations/for-you/?user={user}",
                    f"/api/recommendations/for-you/?user={user}",
                    f"/api/recommendations/similar/{product}/",
                    "/api/recommendations/trending/",
                    f"/api/recommendations/bought-together/{product}/",
                ]
            )
            out.append((kind, "GET", path, b""))
        elif kind == "search":
            out.append(
                (kind, "GET", f"/api/search/?q={rng.choice(nouns).replace(' ', '+')}&user={user}", b"")
            )
        else:
            events = [
                {
                    "event_type": rng.choice(["view", "view", "view", "add_to_cart"]),
                    "product_id": rng.randint(1, n_products),
                    "user_id": user,
                    "session_id": f"load-{user}",
                }
                for _ in range(EVENT_BATCH)
            ]
            out.append((kind, "POST", "/api/events/", json.dumps({"events": events}).encode()))
    return out


async def request(reader, writer, method: str, path: str, headers: dict[str, str], body: bytes) -> int:
    """One HTTP/1.1 request on a kept-alive connection; returns the status (body read and dropped)."""
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if body:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    writer.write(f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{head}\r\n".encode() + body)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while (line := await reader.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        if name.lower() == "content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(status_line.split()[1])


def with_fresh_ids(body: bytes) -> bytes:
    batch = json.loads(body)
    for event in batch["events"]:
        event["event_id"] = uuid.uuid4().hex
    return json.dumps(batch).encode()


async def clients(port: int, requests: list, headers: dict, seconds: float, n_clients: int) -> list:
    deadline = time.monotonic() + seconds
    results: list[tuple[str, float, int]] = []

    async def client(index: int) -> None:
        rng = random.Random(index)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        while time.monotonic() < deadline:
            kind, method, path, body = rng.choice(requests)
            body = with_fresh_ids(body) if body else body
            started = time.perf_counter()
            try:
                status = await request(reader, writer, method, path, headers, body)
            except (OSError, asyncio.IncompleteReadError, ValueError):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                status = 599  # connection lost: counted as an error
            results.append((kind, (time.perf_counter() - started) * 1000, status))
        writer.close()

    await asyncio.gather(*(client(i) for i in range(n_clients)))
    return results


def drive(port, requests, headers, seconds, n_clients, queue) -> None:
    queue.put(asyncio.run(clients(port, requests, headers, seconds, n_clients)))


def run_load(port: int, requests: list, headers: dict, seconds: float, n_clients: int) -> list:
    """The clients run in a second process, so they do not share an interpreter with the server."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    process = context.Process(target=drive, args=(port, requests, headers, seconds, n_clients, queue))
    process.start()
    results = queue.get(timeout=seconds + 120)
    process.join()
    return results


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, int(len(values) * share))]


def report(results: list, seconds: float, args: argparse.Namespace) -> int:
    errors = Counter((kind, status) for kind, _, status in results if not 200 <= status < 300)
    print(
        f"\nMixed load: {args.products:,} products/users, gunicorn {args.workers} workers x {args.threads} "
        f"threads, {args.clients} clients, {seconds:.0f} s, mix {MIX}"
    )
    print(f"{'kind':<16}{'requests':>9}{'share':>7}{'p50 ms':>8}{'p95 ms':>8}{'p99 ms':>8}{'errors':>8}")
    for kind in MIX:
        latencies = sorted(ms for k, ms, _ in results if k == kind)
        if not latencies:
            continue
        print(
            f"{kind:<16}{len(latencies):>9}{len(latencies) / len(results):>7.0%}"
            f"{percentile(latencies, 0.50):>8.1f}{percentile(latencies, 0.95):>8.1f}"
            f"{percentile(latencies, 0.99):>8.1f}{sum(n for (k, _), n in errors.items() if k == kind):>8}"
        )
    events = sum(1 for kind, _, status in results if kind == "events" and status < 300) * EVENT_BATCH
    total, n_errors = len(results) / seconds, sum(errors.values())
    print(f"total {total:.0f} req/s, {events / seconds:.0f} events stored/s, errors: {n_errors}")
    for (kind, status), count in sorted(errors.items()):
        print(f"  {count} x {status} on {kind}")
    return 1 if errors else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=5_000, help="products and users in the shop")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    db_name = f"bench_load_{args.products}"
    serving.setup_django(db_name)
    from django.core.management import call_command
    from django.db import connections

    from recommendations.models import ApiKey, Event, Scope

    call_command("migrate", verbosity=0)
    if not serving.data_is_built(args.products):
        serving.build_data(args.products, args.products)
    _, raw_key = ApiKey.objects.create_key("load benchmark", [s.value for s in Scope])
    events_before = Event.objects.count()
    connections.close_all()
    port = serving.free_port()
    requests = plan(args.products, args.products, seed=11)
    with tempfile.TemporaryDirectory() as workdir:
        server = serving.start_server(Path(workdir), db_name, port, args.workers, args.threads)
        try:
            run_load(
                port, requests, {"Authorization": f"Api-Key {raw_key}"}, min(5.0, args.seconds), args.clients
            )
            results = run_load(
                port, requests, {"Authorization": f"Api-Key {raw_key}"}, args.seconds, args.clients
            )
        finally:
            server.terminate()
            server.wait(timeout=30)
    status = report(results, args.seconds, args)
    print(f"events table grew by {Event.objects.count() - events_before:,} rows (warm-up included)")
    sys.exit(status)


if __name__ == "__main__":
    main()
