"""Recommendation quality on Amazon Beauty 5-core (leave-one-out, full ranking).

Loads the shared benchmark files directly (nothing is copied into the repository), builds
item content features, fits the classic baselines and the two-tower model on the same split
and prints one table.

    python benchmarks/quality.py                # full run
    python benchmarks/quality.py --quick        # small subset, smoke test
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Threads that cannot get a core should sleep rather than spin (the machine is shared).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from recommendations.learning.classic import (
    ALSRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)
from recommendations.learning.dataset import InteractionData, leave_one_out_split
from recommendations.learning.evaluation import compare, format_table
from recommendations.learning.features import (
    FeatureConfig,
    ItemContent,
    ItemFeatures,
    ItemFeaturizer,
)
from recommendations.learning.two_tower import (
    EpochLog,
    TrainConfig,
    TwoTowerRecommender,
)

DATA_DIR = Path(os.environ.get("BEAUTY_DATA_DIR", "/work/shared/datasets/amazon_beauty_5core"))

# The two-tower settings measured in docs/benchmarks.md ("Recommendation quality").
TWO_TOWER = {
    "dim": 64,
    "n_layers": 2,
    "n_heads": 1,
    "ffn_dim": 256,
    "max_len": 50,
    "dropout": 0.5,
    "id_dropout": 0.2,
    "batch_size": 256,
    "lr": 3e-3,
    "lr_schedule": "linear",
    "loss": "sampled",
    "n_negatives": 2048,
    "eval_every": 2,
    "patience": 5,
    "epochs": 30,
}
FEATURES = {"use_title_ngrams": True}


def load_items(path: Path) -> list[ItemContent]:
    """items.csv -> ItemContent, in benchmark item-id order (item_id 1 -> index 0)."""
    rows = {}
    with path.open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            price = float(row["price"]) if row["price"] else None
            rows[int(row["item_id"])] = ItemContent(
                title=row["title"],
                category_path=json.loads(row["categories"]) if row["categories"] else (),
                brand=row["brand"] or None,
                price=price,
            )
    return [rows[i] for i in range(1, len(rows) + 1)]


def load_beauty(data_dir: Path = DATA_DIR) -> tuple[InteractionData, list[ItemContent]]:
    """Interactions in the benchmark's per-user order plus item metadata."""
    users, items, ts, pos = [], [], [], []
    with gzip.open(data_dir / "interactions.csv.gz", "rt", newline="") as fh:
        for row in csv.DictReader(fh):
            users.append(int(row["user_id"]) - 1)
            items.append(int(row["item_id"]) - 1)
            ts.append(int(row["timestamp"]))
            pos.append(int(row["seq_index"]))
    users_a, items_a, pos_a = np.array(users), np.array(items), np.array(pos)
    order = np.lexsort((pos_a, users_a))  # the benchmark order, ties in time included
    contents = load_items(data_dir / "items.csv")
    n_users = int(users_a.max()) + 1
    counts = np.bincount(users_a, minlength=n_users)
    data = InteractionData(
        indptr=np.concatenate([[0], np.cumsum(counts)]),
        items=items_a[order],
        weights=np.ones(len(order), np.float32),
        timestamps=np.array(ts)[order],
        n_items=len(contents),
    )
    return data, contents


def subset_users(data: InteractionData, n_users: int, seed: int = 0) -> InteractionData:
    """A random subset of users (all their events) and only the items they touched."""
    rng = np.random.default_rng(seed)
    users = np.sort(rng.choice(data.n_users, size=min(n_users, data.n_users), replace=False))
    keep = np.zeros(data.n_users, dtype=bool)
    keep[users] = True
    selected = data.select(keep[data.user_of_interaction()])
    items = np.unique(selected.items)
    remap = np.full(data.n_items, -1, dtype=np.int64)
    remap[items] = np.arange(len(items))
    features = data.item_features
    if features is not None:
        features = ItemFeatures(features.ids[items], features.weights[items], features.n_features)
    return InteractionData(
        np.concatenate([[0], np.cumsum(selected.lengths()[users])]),
        remap[selected.items],
        selected.weights,
        selected.timestamps,
        len(items),
        features,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TWO_TOWER["epochs"])
    parser.add_argument("--device", default=None, help="cpu or cuda (default: automatic)")
    parser.add_argument("--quick", action="store_true", help="3,000 users, 2 epochs: smoke run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: fastest here)")
    parser.add_argument(
        "--max-seconds", type=float, default=840.0, help="training time budget of the two-tower"
    )
    parser.add_argument("--skip-classic", action="store_true", help="only the two-tower model")
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    data, contents = load_beauty(args.data_dir)
    featurizer = ItemFeaturizer(FeatureConfig(**FEATURES))
    data.item_features = featurizer.fit_transform(contents)
    if args.quick:
        data = subset_users(data, 3000)
    split = leave_one_out_split(data)
    print(
        f"data: {data.n_users} users, {data.n_items} items, {data.n_interactions} events; "
        f"{data.item_features.mask.sum(1).mean():.1f} content features per item; "
        f"loaded in {time.perf_counter() - t0:.1f}s",
        flush=True,
    )

    config = TrainConfig(
        **{**TWO_TOWER, "epochs": 2 if args.quick else args.epochs},
        device=args.device,
        num_threads=args.threads,
        max_seconds=args.max_seconds,
    )
    # The two-tower model runs first: it is the one with a wall-clock budget.
    two_tower = _LoggedTwoTower(config)
    models: dict = {"two-tower (content + causal transformer)": two_tower}
    if not args.skip_classic:
        models |= {
            "popularity": PopularityRecommender(),
            "item-kNN (all neighbours)": ItemKNNRecommender(k=None),
            "item-kNN (k=200, shrink=10)": ItemKNNRecommender(k=200, shrink=10.0),
            "EASE (lambda=500)": EASERecommender(l2=500.0),
            "ALS (128 factors)": ALSRecommender(factors=128, regularization=10.0, alpha=20.0),
        }
    rows = compare(models, split, ks=(10, 20), log=_print_unless_table)
    rows = rows[1:] + rows[:1]  # baselines first in the table
    table = format_table(rows, (10, 20))
    print(table)
    ease = next((r for r in rows if str(r["model"]).startswith("EASE")), None)
    tt = rows[-1]
    ratio = float(tt["NDCG@10"]) / float(ease["NDCG@10"]) if ease else float("nan")
    summary = (
        f"two-tower: best epoch {two_tower.best_epoch} of {len(two_tower.history)} "
        f"(validation NDCG@10 {two_tower.best_metric:.4f}), trained in {tt['train_s']:.0f}s; "
        f"NDCG@10 two-tower / EASE = {ratio:.2f}; load average (1/5/15 min) at the end: "
        + "/".join(f"{x:.1f}" for x in os.getloadavg())
    )
    print(summary)


def _print_unless_table(line: str) -> None:
    if not line.startswith("| model"):
        print(line, flush=True)


class _LoggedTwoTower(TwoTowerRecommender):
    """Prints one line per epoch."""

    def fit(self, train, validation=None, callback=None):  # type: ignore[override]
        def log(entry: EpochLog) -> None:
            print(
                f"  epoch {entry.epoch}: loss {entry.loss:.4f}, val NDCG@10 "
                f"{entry.val_metric if entry.val_metric is None else round(entry.val_metric, 4)}, "
                f"{entry.seconds:.0f}s (total {entry.elapsed:.0f}s, load {os.getloadavg()[0]:.1f})",
                flush=True,
            )

        return super().fit(train, validation, callback=callback or log)


if __name__ == "__main__":
    main()
