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

from recommendations.learning.classic import (  # noqa: E402
    ALSRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
)
from recommendations.learning.dataset import InteractionData, leave_one_out_split  # noqa: E402
from recommendations.learning.evaluation import compare, format_table  # noqa: E402
from recommendations.learning.features import ItemContent, ItemFeaturizer  # noqa: E402

DATA_DIR = Path(
    os.environ.get("BEAUTY_DATA_DIR", "/work/shared/datasets/amazon_beauty_5core")
)


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
