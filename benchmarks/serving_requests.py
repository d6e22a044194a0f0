"""The cost of one serving request: SQL statements and in-process latency, endpoint by endpoint.

Load tests on a shared 2-core machine measure the queue more than the code; this measures
what one request costs on its own. It serves requests through Django's test client (all
middleware, API calls authenticated by API key for a `?user=`, the storefront's home page
signed in, throttling lifted) against the data that `benchmarks/serving.py` builds
(`bench_serving_100000`, or `_5000` with `--quick`), with the cache cleared before each
request (cache misses: the expensive case). It prints per endpoint the statements per request
(`CaptureQueriesContext`), the p50 / p90 latency and the p50 CPU time of this process (Python's
share: on a busy machine the rest is waiting), next to a plain DRF view that runs one query
(the yardstick: the targets allow ~2.4x it).

    python benchmarks/serving.py --quick && python benchmarks/serving_requests.py --quick
    python benchmarks/serving_requests.py --requests 200 --show-sql for-you
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from serving import data_is_built, setup_django  # the sibling benchmark builds the data

WARM_UP = 5


def _baseline_urls():
    """A URL conf with the yardstick view in front of the shop's own URLs."""
    import types

    from django.urls import include, path
    from rest_framework.permissions import AllowAny
    from rest_framework.response import Response
    from rest_framework.views import APIView

    from shop.models import Product

    class Baseline(APIView):
        authentication_classes = []
        permission_classes = [AllowAny]

        def get(self, request, pk):
            return Response(Product.objects.filter(pk=pk).values("id", "title", "price").first())

    module = types.ModuleType("serving_requests_urls")
    module.urlpatterns = [
        path("bench/baseline/<int:pk>/", Baseline.as_view()),
        path("", include("shop.urls")),
    ]
    return module


def plans(n: int, n_stores: int, seed: int = 11) -> dict[str, list[tuple[str, int | None]]]:
    """Per endpoint: (URL, the user to sign in first or None). API calls name the user instead."""
    rng = random.Random(seed)
    users = [rng.randint(1, n) for _ in range(2000)]
    products = [rng.randint(1, n) for _ in range(2000)]
    words = ["shampoo", "kettle", "backpak", "headphones", "yoga mat", "candle", "serum", "tent"]
    api = {
        "baseline": [f"/bench/baseline/{p}/" for p in products],
        "for-you": [f"/api/recommendations/for-you/?user={u}" for u in users],
        "for-you explain": [f"/api/recommendations/for-you/?user={u}&explain=1" for u in users],
        "similar": [f"/api/recommendations/similar/{p}/" for p in products],
        "search": [f"/api/search/?q={rng.choice(words)}&user={u}" for u in users],
        "trending": ["/api/recommendations/trending/"] * len(users),
        "bought-together": [f"/api/recommendations/bought-together/{p}/" for p in products],
        "store-products": [
            f"/api/recommendations/store-products/{rng.randint(1, n_stores)}/?user={u}" for u in users
        ],
    }
    plan = {name: [(url, None) for url in urls] for name, urls in api.items()}
    # The storefront's home page, signed in: campaigns, for-you, trending and stores blocks.
    plan["home page"] = [("/", u) for u in users]
    return plan


def measure(client, requests: list, headers: dict, show_sql: bool) -> tuple[list, list, list]:
    """Wall and CPU milliseconds and statements of each request after the warm-up ones."""
    from django.contrib.auth import get_user_model
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    latencies, cpu, counts = [], [], []
    for index, (url, user_id) in enumerate(requests):
        cache.clear()
        if user_id is not None:
            client.force_login(get_user_model().objects.get(pk=user_id))
        with CaptureQueriesContext(connection) as captured:
            started, started_cpu = time.perf_counter(), time.process_time()
            response = client.get(url, **({} if user_id else headers))
            elapsed = (time.perf_counter() - started) * 1000
            elapsed_cpu = (time.process_time() - started_cpu) * 1000
        if response.status_code != 200:
            raise SystemExit(f"{url} answered {response.status_code}: {response.content[:300]!r}")
        if index >= WARM_UP:
            latencies.append(elapsed)
            cpu.append(elapsed_cpu)
            counts.append(len(captured))
        if show_sql and index == WARM_UP:
            for query in captured.captured_queries:
                print(f"  {query['time']}s  {query['sql'][:200]}")
    return latencies, cpu, counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the 5,000-product data set")
    parser.add_argument("--requests", type=int, default=100, help="requests per endpoint")
    parser.add_argument("--show-sql", nargs="*", default=[], help="print one request's SQL of these")
    args = parser.parse_args()
    n = 5_000 if args.quick else 100_000
    setup_django(f"bench_serving_{n}")
    if not data_is_built(n):
        quick = " --quick" if args.quick else ""
        raise SystemExit(f"No benchmark data: run `python benchmarks/serving.py{quick}` first.")

    from django.conf import settings
    from django.test import Client
    from django.test.utils import override_settings

    from recommendations.models import ApiKey, Scope
    from shop.models import Store

    api_key, raw = ApiKey.objects.create_key("request-cost benchmark", [Scope.RECOMMENDATIONS_READ.value])
    unthrottled = {k: "100000000/minute" for k in ("api_key", "user", "anonymous")}
    overrides = {
        "ROOT_URLCONF": _baseline_urls(),
        "RECOMMENDATIONS": {**settings.RECOMMENDATIONS, "API_THROTTLE_RATES": unthrottled},
        "DEBUG": False,
    }
    try:
        with override_settings(**overrides):
            client = Client()
            headers = {"HTTP_AUTHORIZATION": f"Api-Key {raw}"}
            print(f"{'endpoint':<18}{'queries':>9}{'p50 ms':>9}{'p90 ms':>9}{'cpu ms':>9}{'x baseline':>12}")
            base = None
            for name, urls in plans(n, Store.objects.count()).items():
                requests = urls[: args.requests + WARM_UP]
                latencies, cpu, counts = measure(client, requests, headers, name in args.show_sql)
                p50 = statistics.median(latencies)
                p90 = statistics.quantiles(latencies, n=10)[-1]
                base = base or p50
                queries = f"{min(counts)}-{max(counts)}" if min(counts) != max(counts) else str(counts[0])
                cpu_p50 = statistics.median(cpu)
                print(f"{name:<18}{queries:>9}{p50:>9.1f}{p90:>9.1f}{cpu_p50:>9.1f}{p50 / base:>11.1f}x")
    finally:
        api_key.delete()


if __name__ == "__main__":
    main()
