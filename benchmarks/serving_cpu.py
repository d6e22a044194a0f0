"""CPU per request in the web worker and in PostgreSQL, through gunicorn, one request at a time.

Latency under load on a shared 2-core machine mostly measures the queue; CPU seconds per
request say what a given throughput needs. This starts gunicorn with one sync worker on the
data of `benchmarks/serving.py` (build it first), sends each endpoint's requests one after
another on a keep-alive connection, and reads the CPU time of gunicorn's processes and of
PostgreSQL's (with their exited children) from /proc before and after. The plain one-query view
is the baseline.

    python benchmarks/serving.py --products 100000 && python benchmarks/serving_cpu.py
    python benchmarks/serving_cpu.py --products 1000000 --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import serving  # noqa: E402 - the data, the gunicorn launcher, the HTTP client
from benchmarks.memory import database_pid, tree_cpu_seconds  # noqa: E402

KINDS = ("for-you", "similar", "search", "trending", "bought-together", "store-products")


async def _send(port: int, paths: list[str], headers: dict[str, str]) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for path in paths:
            status = await serving._request(reader, writer, path, headers)
            if status != 200:
                raise SystemExit(f"{path} answered {status}")
    finally:
        writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--products", type=int, default=100_000, help="which benchmark shop")
    parser.add_argument("--requests", type=int, default=60, help="per endpoint, after 5 warm-up ones")
    args = parser.parse_args()
    db_name = f"bench_serving_{args.products}"
    serving.setup_django(db_name)
    if not serving.data_is_built(args.products):
        raise SystemExit(f"No benchmark data: run `python benchmarks/serving.py --products {args.products}`.")
    from django.db import connections

    from recommendations.models import ApiKey, Scope
    from shop.models import Store

    database = database_pid()

    def database_cpu() -> float:
        return tree_cpu_seconds(database) if database else 0.0

    api_key, raw = ApiKey.objects.create_key("serving CPU benchmark", [Scope.RECOMMENDATIONS_READ.value])
    plan = serving.request_plan(min(args.products, serving.MAX_USERS), args.products, Store.objects.count())
    connections.close_all()
    port = serving.free_port()
    headers = {"Authorization": f"Api-Key {raw}"}
    rows = []
    try:
        with tempfile.TemporaryDirectory() as workdir:
            server = serving.start_server(Path(workdir), db_name, port, workers=1, threads=1)
            try:
                kinds = {"baseline": [f"/bench/baseline/{i}/" for i in range(1, args.requests + 6)]}
                kinds |= {kind: [p for k, p in plan if k == kind][: args.requests + 5] for kind in KINDS}
                for kind, paths in kinds.items():
                    asyncio.run(_send(port, paths[:5], headers))
                    web, db, started = tree_cpu_seconds(server.pid), database_cpu(), time.perf_counter()
                    asyncio.run(_send(port, paths[5:], headers))
                    n = len(paths) - 5
                    rows.append(
                        (
                            kind,
                            (tree_cpu_seconds(server.pid) - web) * 1000 / n,
                            (database_cpu() - db) * 1000 / n if database else float("nan"),
                            (time.perf_counter() - started) * 1000 / n,
                        )
                    )
            finally:
                server.terminate()
                server.wait(timeout=30)
    finally:
        api_key.delete()
    print(f"\nCPU per request, one at a time: {args.products:,} products, 1 gunicorn sync worker")
    print(f"{'endpoint':<18}{'web ms':>8}{'db ms':>8}{'total':>8}{'x baseline':>12}{'wall ms':>9}")
    base = rows[0][1] + rows[0][2]
    for kind, web, db, wall in rows:
        print(f"{kind:<18}{web:>8.1f}{db:>8.1f}{web + db:>8.1f}{(web + db) / base:>11.1f}x{wall:>9.1f}")


if __name__ == "__main__":
    main()
