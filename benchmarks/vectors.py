"""Writing and indexing vectors: the COPY writer against a plain psycopg COPY, index build times.

Runs on its own database of the embedded server (`bench_vectors`, dropped at the end):

    python benchmarks/vectors.py                          # 1M x 64 writes; indexes for 100k and 1M
    python benchmarks/vectors.py --rows 200000 --sizes 100000

Prints rows/s of `recommendations.vectors.writer.write_product_vectors` beside a raw COPY of
the same data (psycopg's `copy.write_row` with pgvector's binary dumper, into the same
table), the build time of each per-version index (the score index as HNSW and as IVFFlat, the
cosine one as HNSW), and k-NN latency and recall@10 of `nearest_products` against exact search
with each kind of score index. The vectors are random (no clusters): the hardest case for both.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BENCH_DB = "bench_vectors"


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    os.environ["EMBEDDED_POSTGRES_DB"] = BENCH_DB
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def raw_copy(version_id: int, ids: list[str], embeddings: np.ndarray, biases: np.ndarray) -> float:
    """The straightforward COPY: one write_row per vector, pgvector's binary dumper. Timed up to
    and including the commit, which runs the deferred foreign-key checks of every row."""
    from django.db import connection, transaction
    from django.utils import timezone
    from pgvector.psycopg import register_vector

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        register_vector(cursor.cursor.connection)
        raw = cursor.cursor.connection.cursor()  # a cursor that knows the vector type
        with raw.copy(
            "COPY recommendations_productvector (model_version_id, product_id, embedding, bias, updated_at) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(["bigint", "varchar", "vector", "float8", "timestamptz"])
            now = timezone.now()
            for key, vector, bias in zip(ids, embeddings, biases, strict=True):
                copy.write_row((version_id, key, vector, float(bias), now))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="vectors written (default 1,000,000)")
    parser.add_argument("--dims", type=int, default=64)
    parser.add_argument(
        "--sizes",
        default="100000,1000000",
        help="comma-separated index sizes to build (default 100000,1000000)",
    )
    parser.add_argument("--queries", type=int, default=200, help="k-NN queries per index size")
    parser.add_argument("--keep", action="store_true", help=f"keep the {BENCH_DB} database afterwards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]

    setup_django()
    from django.conf import settings
    from django.db import connection
    from django.test import override_settings
    from django.test.utils import CaptureQueriesContext

    from recommendations.models import ModelVersion, ProductVector
    from recommendations.vectors import indexes, queries, writer

    ModelVersion.objects.all().delete()
    rng = np.random.default_rng(0)
    n = max([args.rows, *sizes])
    embeddings = rng.normal(size=(n, args.dims)).astype(np.float32)
    biases = rng.normal(0, 0.1, n)
    ids = [str(i) for i in range(1, n + 1)]

    print(f"PostgreSQL: {connection.cursor().connection.info.server_version}, {os.cpu_count()} CPU cores")
    print(f"## Writing {args.rows:,} x {args.dims}-dim product vectors (each into an empty table)")
    raw_version = ModelVersion.objects.create(dimensions=args.dims)
    seconds = raw_copy(raw_version.pk, ids[: args.rows], embeddings[: args.rows], biases[: args.rows])
    print(f"raw COPY (psycopg write_row):       {seconds:7.1f}s  {args.rows / seconds:>10,.0f} rows/s")
    empty_vector_table()

    version = ModelVersion.objects.create(dimensions=args.dims)
    started = time.perf_counter()
    writer.write_product_vectors(version, ids[: args.rows], embeddings[: args.rows], biases[: args.rows])
    seconds = time.perf_counter() - started
    print(f"writer (numpy-encoded binary COPY): {seconds:7.1f}s  {args.rows / seconds:>10,.0f} rows/s")
    started = time.perf_counter()
    writer.write_product_vectors(version, ids[: args.rows], embeddings[: args.rows], biases[: args.rows])
    seconds = time.perf_counter() - started
    print(f"writer, rewriting the same version: {seconds:7.1f}s  {args.rows / seconds:>10,.0f} rows/s")
    assert ProductVector.objects.filter(model_version=version).count() == args.rows
    empty_vector_table()

    print(
        f"## Index builds and k-NN (HNSW m={indexes.HNSW_M}, ef_construction "
        f"{indexes.HNSW_EF_CONSTRUCTION_SCORE} for the score index, {indexes.HNSW_EF_CONSTRUCTION} for "
        "cosine; IVFFlat lists sqrt(rows); maintenance_work_mem 1GB, 1 parallel worker)"
    )
    score_spec, cosine_spec = indexes.INDEX_SPECS[:2]  # the product indexes; store tables are small
    # The score index (for-you: user . item + bias) of each kind, with the search lengths tried.
    lengths = {
        "hnsw": ("HNSW_EF_SEARCH_FOR_USERS", "ef_search", (100, 400, 1000)),
        "ivfflat": ("IVFFLAT_PROBES", "probes", (5, 20, 40)),
    }
    for size in sizes:
        version = ModelVersion.objects.create(dimensions=args.dims)
        writer.write_product_vectors(version, ids[:size], embeddings[:size], biases[:size])
        queries_ = rng.normal(size=(args.queries, args.dims)).astype(np.float32)
        exact = embeddings[:size] @ queries_.T + biases[:size, None]
        truth = [{ids[i] for i in np.argpartition(-exact[:, j], 10)[:10]} for j in range(len(queries_))]
        for method, (setting, label, values) in lengths.items():
            with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "SCORE_INDEX": method}):
                indexes.drop_indexes(version)
                started = time.perf_counter()
                indexes.build_indexes(version, specs=[score_spec])
                seconds = time.perf_counter() - started
            print(f"{size:>9,} vectors, score index ({method}, {score_spec.opclass}): {seconds:7.1f}s")
            for value in values:
                with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, setting: value}):
                    latencies, recalls = [], []
                    for query, expected in zip(queries_, truth, strict=True):
                        started = time.perf_counter()
                        found = queries.nearest_products(query, 10, version=version)
                        latencies.append(time.perf_counter() - started)
                        recalls.append(len(expected & {p for p, _ in found}) / 10)
                p50, p95 = np.percentile(latencies, [50, 95]) * 1e3
                print(
                    f"{size:>9,} vectors, nearest_products k=10, {method} {label} {value:>4}: "
                    f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, recall@10 {np.mean(recalls):.3f}"
                )
            with CaptureQueriesContext(connection) as executed:
                queries.nearest_products(queries_[0], 10, version=version)
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN {executed.captured_queries[-1]['sql']}")
                scan = next(row[0].strip() for row in cursor.fetchall() if "Scan" in row[0])
            print(f"{size:>9,} vectors, plan of nearest_products: {scan.split('  (')[0]}")
        started = time.perf_counter()
        indexes.build_indexes(version, specs=[cosine_spec])
        seconds = time.perf_counter() - started
        print(f"{size:>9,} vectors, {cosine_spec.short} index (hnsw, {cosine_spec.opclass}): {seconds:7.1f}s")
        indexes.drop_indexes(version)
        empty_vector_table()

    if not args.keep:
        drop_database()


def empty_vector_table() -> None:
    """TRUNCATE (this database is the benchmark's own), so each run starts from an empty table."""
    from django.db import connection

    from recommendations.models import ProductVector

    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {ProductVector._meta.db_table}")


def drop_database() -> None:
    import psycopg
    from django.db import connection

    params = connection.get_connection_params()
    connection.close()
    params["dbname"] = "postgres"
    with psycopg.connect(**params, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {BENCH_DB}")


if __name__ == "__main__":
    main()
