"""HNSW against IVFFlat for users' queries, on the vectors of a model trained on real data.

Trains the two-tower model on Amazon Beauty 5-core (the settings of `benchmarks/quality.py`,
for `--max-seconds`), writes its product vectors as a model version into its own database
(`bench_index_kinds` on the embedded server), then builds the score index (user . item + bias)
of each kind and searches it with a sample of users at growing lengths, printing recall@10
against the exact ranking and milliseconds per query through `nearest_products`. This is the
evidence behind `SCORE_INDEX`'s default and behind tuning the length per version
(`recommendations.vectors.tuning`); `benchmarks/serving.py` shows the same on its synthetic shop.

    python benchmarks/index_kinds.py                 # 240 s of training, 500 users
    python benchmarks/index_kinds.py --max-seconds 30 --users 100
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from serving import setup_django

LENGTHS = {
    "hnsw": ("HNSW_EF_SEARCH_FOR_USERS", (40, 100, 400, 800)),
    "ivfflat": ("IVFFLAT_PROBES", (2, 5, 10, 20)),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-seconds", type=float, default=240.0, help="training time budget")
    parser.add_argument("--users", type=int, default=500, help="users whose queries are measured")
    args = parser.parse_args()

    setup_django("bench_index_kinds")
    from django.conf import settings
    from django.core.management import call_command
    from django.test import override_settings
    from quality import FEATURES, TWO_TOWER, load_beauty

    from recommendations.learning.dataset import leave_one_out_split
    from recommendations.learning.features import FeatureConfig, ItemFeaturizer
    from recommendations.learning.two_tower import TrainConfig, TwoTowerRecommender
    from recommendations.models import ModelVersion
    from recommendations.vectors import indexes, tuning, writer

    call_command("migrate", verbosity=0)
    data, contents = load_beauty()
    data.item_features = ItemFeaturizer(FeatureConfig(**FEATURES)).fit_transform(contents)
    split = leave_one_out_split(data)
    started = time.perf_counter()
    model = TwoTowerRecommender(TrainConfig(**TWO_TOWER, max_seconds=args.max_seconds, num_threads=1))
    model.fit(split.train, split.validation)
    print(f"trained in {time.perf_counter() - started:.0f}s", flush=True)

    items = model.item_vectors()
    embeddings, biases = items[:, :-1], items[:, -1]
    train = split.train
    users = np.random.default_rng(0).choice(train.n_users, min(args.users, train.n_users), replace=False)
    histories = [train.items[train.indptr[u] : train.indptr[u + 1]] for u in users]
    user_vectors = model.user_embeddings(histories, user_ids=users).float().cpu().numpy()
    exact = [{str(i) for i in np.argsort(-(u @ embeddings.T + biases))[:10]} for u in user_vectors]

    ModelVersion.objects.all().delete()
    version = ModelVersion.objects.create(dimensions=embeddings.shape[1])
    writer.write_product_vectors(version, [str(i) for i in range(len(embeddings))], embeddings, biases)
    print(
        f"{len(embeddings):,} items x {embeddings.shape[1]} dims, {len(users)} users; "
        f"IVFFlat lists {indexes.ivfflat_lists(len(embeddings))}"
    )
    for kind, (setting, lengths) in LENGTHS.items():
        with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, "SCORE_INDEX": kind}):
            indexes.drop_indexes(version)
            started = time.perf_counter()
            indexes.build_indexes(version, specs=[indexes.SCORE_SPEC])
            print(f"{kind}: built in {time.perf_counter() - started:.1f}s")
        for length in lengths:
            with override_settings(RECOMMENDATIONS={**settings.RECOMMENDATIONS, setting: length}):
                recall, milliseconds = tuning.measure_search(version, user_vectors, exact)
            print(f"  {setting} {length:>4}: recall@10 {recall:.3f}, {milliseconds:.2f} ms/query")
    ModelVersion.objects.all().delete()


if __name__ == "__main__":
    main()
