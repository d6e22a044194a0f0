"""Small generated data sets with a planted structure, shared by the learning-core tests."""

from __future__ import annotations

import numpy as np
import pytest

from recommendations.learning.dataset import InteractionData
from recommendations.learning.features import ItemContent, ItemFeaturizer

N_STORES = 4
ITEMS_PER_STORE = 12
STORE_WORDS = ("lipstick", "shampoo", "sneaker", "teapot")


def store_of(item: int) -> int:
    return item // ITEMS_PER_STORE


def store_item(store: int, index: int, cold: bool = False) -> ItemContent:
    """An item whose title, category, brand and price all reveal its store."""
    word = STORE_WORDS[store]
    return ItemContent(
        title=f"{word} model {'new' if cold else index} {word}s",
        category_path=("Shop", f"Dept {store}", f"{word} aisle"),
        brand=f"brand-{store}",
        price=[5.0, 20.0, 80.0, 300.0][store] * (1 + 0.05 * index),
    )


def store_catalogue() -> list[ItemContent]:
    return [store_item(s, i) for s in range(N_STORES) for i in range(ITEMS_PER_STORE)]


def store_sequences(
    n_users: int, seed: int = 0, length: tuple[int, int] = (6, 10), switch: float = 0.4
) -> tuple[list[list[int]], np.ndarray]:
    """Each user shops in one store (random items of it); some switch to another store midway.

    Returns the sequences and the store of each user's latest item, which is where the next
    item comes from: a model must follow the most recent items, not the whole bag.
    """
    rng = np.random.default_rng(seed)
    seqs, stores = [], []
    for _ in range(n_users):
        n = int(rng.integers(*length))
        first = int(rng.integers(N_STORES))
        cut = int(rng.integers(1, n)) if rng.random() < switch else n
        second = (first + int(rng.integers(1, N_STORES))) % N_STORES
        seq = []
        for store, count in ((first, cut), (second, n - cut)):
            picks = rng.choice(ITEMS_PER_STORE, size=count, replace=False)
            seq.extend(int(store * ITEMS_PER_STORE + p) for p in picks)
        seqs.append(seq)
        stores.append(first if cut == n else second)
    return seqs, np.array(stores)


@pytest.fixture
def store_data() -> tuple[InteractionData, np.ndarray, ItemFeaturizer]:
    seqs, stores = store_sequences(240)
    featurizer = ItemFeaturizer()
    features = featurizer.fit_transform(store_catalogue())
    data = InteractionData.from_sequences(seqs, N_STORES * ITEMS_PER_STORE, item_features=features)
    return data, stores, featurizer
