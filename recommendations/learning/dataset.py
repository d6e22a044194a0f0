"""Interaction data and the train/validation/test splits used to fit and judge models.

Everything is plain numpy so that the Django layer can build it from query results and the
models can be tested without a database. Users and items are dense integer indices
(`0..n_users-1`, `0..n_items-1`); mapping them to primary keys is the caller's job.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .features import ItemFeatures, RFMFeaturizer, UserFeatures


@dataclass
class InteractionData:
    """Per-user, time-ordered interactions in a CSR-like layout.

    User `u`'s interactions are `items[indptr[u]:indptr[u + 1]]`, oldest first. A flat layout
    keeps memory small and slicing cheap for millions of events. `weights` carry the
    caller's event-type weight times time decay; `timestamps` are unix seconds; `revenue`, when
    given, the money of each interaction.

    With a `user_featurizer`, the user features are derived from these interactions, and again
    for every part `select` takes (a split's training events, those known when a held-out target
    is predicted): a part's features never describe events it left out.
    """

    indptr: np.ndarray
    items: np.ndarray
    weights: np.ndarray
    timestamps: np.ndarray
    n_items: int
    item_features: ItemFeatures | None = None
    user_features: UserFeatures | None = None
    revenue: np.ndarray | None = None
    user_featurizer: RFMFeaturizer | None = None

    def __post_init__(self) -> None:
        self.indptr = np.asarray(self.indptr, dtype=np.int64)
        self.items = np.asarray(self.items, dtype=np.int64)
        self.weights = np.asarray(self.weights, dtype=np.float32)
        self.timestamps = np.asarray(self.timestamps, dtype=np.int64)
        n = len(self.items)
        if self.indptr[0] != 0 or self.indptr[-1] != n or np.any(np.diff(self.indptr) < 0):
            raise ValueError("indptr must start at 0, be non-decreasing and end at len(items)")
        if len(self.weights) != n or len(self.timestamps) != n:
            raise ValueError("items, weights and timestamps must have the same length")
        if n and (self.items.min() < 0 or self.items.max() >= self.n_items):
            raise ValueError(f"item indices must lie in [0, {self.n_items})")
        if self.item_features is not None and self.item_features.n_items != self.n_items:
            raise ValueError("item_features must have one row per item")
        if self.revenue is not None:
            self.revenue = np.asarray(self.revenue, dtype=np.float64)
            if len(self.revenue) != n:
                raise ValueError("revenue must have one entry per interaction")
        if self.user_featurizer is not None:
            self.user_features = self.user_featurizer.transform(
                self.user_of_interaction(), self.timestamps, self.revenue, self.n_users
            )

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        user_ids: np.ndarray,
        item_ids: np.ndarray,
        timestamps: np.ndarray | None = None,
        weights: np.ndarray | None = None,
        *,
        n_users: int | None = None,
        n_items: int | None = None,
        item_features: ItemFeatures | None = None,
        user_features: UserFeatures | None = None,
        revenue: np.ndarray | None = None,
        user_featurizer: RFMFeaturizer | None = None,
    ) -> InteractionData:
        """Build from parallel event arrays (any order); events are sorted by (user, time).

        The sort is stable, so events with equal timestamps keep the order they were given in.
        """
        user_ids = np.asarray(user_ids, dtype=np.int64)
        item_ids = np.asarray(item_ids, dtype=np.int64)
        n = len(user_ids)
        ts = np.zeros(n, np.int64) if timestamps is None else np.asarray(timestamps, np.int64)
        w = np.ones(n, np.float32) if weights is None else np.asarray(weights, np.float32)
        n_users = int(user_ids.max()) + 1 if n_users is None and n else (n_users or 0)
        if n_items is None:
            n_items = int(item_ids.max()) + 1 if n else 0
        order = np.lexsort((ts, user_ids))
        counts = np.bincount(user_ids, minlength=n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        items, w, ts = item_ids[order], w[order], ts[order]
        money = None if revenue is None else np.asarray(revenue, np.float64)[order]
        return cls(indptr, items, w, ts, n_items, item_features, user_features, money, user_featurizer)

    @classmethod
    def from_sequences(
        cls,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        weights: Sequence[Sequence[float]] | None = None,
        timestamps: Sequence[Sequence[int]] | None = None,
        *,
        item_features: ItemFeatures | None = None,
        user_features: UserFeatures | None = None,
    ) -> InteractionData:
        """Build from already ordered per-user item sequences (oldest first)."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        items = _concat(sequences, np.int64)
        w = np.ones(len(items), np.float32) if weights is None else _concat(weights, np.float32)
        ts = _default_timestamps(indptr) if timestamps is None else _concat(timestamps, np.int64)
        return cls(indptr, items, w, ts, n_items, item_features, user_features)

    # --- access -------------------------------------------------------------------------
    @property
    def n_users(self) -> int:
        return len(self.indptr) - 1

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def sequence(self, user: int) -> np.ndarray:
        return self.items[self.indptr[user] : self.indptr[user + 1]]

    def sequences(self) -> list[np.ndarray]:
        return np.split(self.items, self.indptr[1:-1])

    def user_weights(self, user: int) -> np.ndarray:
        return self.weights[self.indptr[user] : self.indptr[user + 1]]

    def user_of_interaction(self) -> np.ndarray:
        """User index of every interaction (the CSR row of each event)."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths())

    def to_csr(self, binary: bool = False) -> sp.csr_matrix:
        """User x item matrix; repeated events are summed (or set to 1 with `binary`)."""
        data = np.ones(self.n_interactions, np.float32) if binary else self.weights
        m = sp.csr_matrix(
            (data, (self.user_of_interaction(), self.items)), shape=(self.n_users, self.n_items)
        )
        m.sum_duplicates()
        if binary:
            m.data[:] = 1.0
        return m

    def item_popularity(self) -> np.ndarray:
        """Number of distinct users per item (used by novelty and popularity baselines)."""
        return np.asarray((self.to_csr(binary=True) > 0).sum(axis=0)).ravel().astype(np.int64)

    def select(self, keep: np.ndarray) -> InteractionData:
        """Keep only the interactions where the boolean mask `keep` is true (users stay; derived
        user features become those of the kept interactions)."""
        keep = np.asarray(keep, dtype=bool)
        users = self.user_of_interaction()[keep]
        counts = np.bincount(users, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)])
        return InteractionData(
            indptr,
            self.items[keep],
            self.weights[keep],
            self.timestamps[keep],
            self.n_items,
            self.item_features,
            self.user_features,
            None if self.revenue is None else self.revenue[keep],
            self.user_featurizer,
        )


@dataclass
class EvalSet:
    """Users to evaluate, what is known about each of them, and what they did next.

    `histories[j]` is the ordered item sequence available when predicting for `users[j]`
    (masked out of the ranking); `targets[j]` are the held-out items to find. `user_features`
    (rows aligned with `users`, when the data has them) are derived from the same events as the
    histories: what is known of each user then, not the model's training rows.
    """

    users: np.ndarray
    histories: list[np.ndarray]
    targets: list[np.ndarray]
    user_features: UserFeatures | None = None

    def __len__(self) -> int:
        return len(self.users)

    def take(self, rows: np.ndarray) -> EvalSet:
        """The users at positions `rows`, with their histories, targets and features."""
        return EvalSet(
            self.users[rows],
            [self.histories[r] for r in rows],
            [self.targets[r] for r in rows],
            None if self.user_features is None else self.user_features.rows(rows),
        )


@dataclass
class Split:
    """A training set plus the validation (for early stopping) and test evaluation sets.

    `train_with_validation` is every interaction known when the test targets are predicted
    (training plus validation targets): models that do not early-stop can learn from it.
    """

    train: InteractionData
    test: EvalSet
    validation: EvalSet | None = None
    train_with_validation: InteractionData | None = None
    info: dict = field(default_factory=dict)


def leave_one_out_split(data: InteractionData, min_interactions: int = 3) -> Split:
    """The sequential-recommendation protocol on distinct products: the last new product is the
    test target, the one before it the validation target (see `last_new_items`).

    Shoppers with fewer than `min_interactions` different products go entirely to training. The
    validation target and the events up to the test target are part of the test history (known
    at test time) but never training data; the events after the test target, all repeats, are
    left out. User features are those of the events known at each step: the training events
    for training and validation, the training and validation events for the test.
    """
    evaluated, validation_at, test_at = last_new_items(data, min_interactions)
    users = np.flatnonzero(evaluated)
    train = _known_before(data, evaluated, validation_at)
    known_at_test = _known_before(data, evaluated, test_at)
    validation = _eval_set(data, users, validation_at, train)
    test = _eval_set(data, users, test_at, known_at_test)
    return Split(train, test, validation, known_at_test, {"protocol": "leave_one_out"})


def last_new_items(
    data: InteractionData, min_interactions: int = 3
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per user: whether they are evaluated, and where (flat index into `data.items`) their
    validation and test targets are: the last two products of their sequence of distinct
    products, each at its first occurrence.

    Evaluation masks the history, so a target the shopper had already touched (viewed, carted,
    then bought) could never be hit: targets are taken from the sequence with repeats removed.
    Like RecBole, it keeps each product's first occurrence, not its last: the target is then
    the product the shopper came to last, with everything before it as the history, which is
    what serving faces when it recommends products not yet seen. Keeping the last occurrence
    would make a product found long ago and bought today the target, and hide its earlier
    events from the history. Histories and training data still hold every event before the
    target, repeats included: they carry the event weights (a purchase after a view) and are
    what serving feeds the user tower. A user is evaluated with at least `min_interactions`
    different products (one to learn from, plus the two targets).
    """
    user_of = data.user_of_interaction()
    # Events are sorted by (user, time): np.unique's first index of a pair is its first event.
    _, first = np.unique(user_of * max(data.n_items, 1) + data.items, return_index=True)
    first = np.sort(first)
    distinct = np.bincount(user_of[first], minlength=data.n_users)
    ends = np.cumsum(distinct)  # the user's last first-occurrence is first[ends[u] - 1]
    evaluated = distinct >= max(min_interactions, 2)
    test_at = np.full(data.n_users, -1, dtype=np.int64)
    validation_at = np.full(data.n_users, -1, dtype=np.int64)
    test_at[evaluated] = first[ends[evaluated] - 1]
    validation_at[evaluated] = first[ends[evaluated] - 2]
    return evaluated, validation_at, test_at


def temporal_split(
    data: InteractionData, test_fraction: float = 0.1, validation_fraction: float = 0.1
) -> Split:
    """Global time split: the latest events (by timestamp quantile) are validation and test.

    Closer to production than leave-one-out (no look into the future for any user). Test users
    are those with events after the test cut-off and at least one event before it; their history
    (and user features) is everything before the cut-off. Targets are the distinct not-yet-seen
    items they touched.
    """
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1 - test_fraction:
        raise ValueError("fractions must satisfy 0 < test, 0 <= validation, test + val < 1")
    ts = data.timestamps
    t_test = np.quantile(ts, 1 - test_fraction)
    t_val = np.quantile(ts, 1 - test_fraction - validation_fraction)
    train = data.select(ts < t_val)
    known_at_test = data.select(ts < t_test)
    validation = _period_eval_set(data, train, t_val, t_test) if validation_fraction > 0 else None
    test = _period_eval_set(data, known_at_test, t_test, np.inf)
    info = {"protocol": "temporal", "t_validation": float(t_val), "t_test": float(t_test)}
    return Split(train, test, validation, known_at_test, info)


def kfold_user_split(
    data: InteractionData, k: int = 5, seed: int = 0, min_interactions: int = 3
) -> list[Split]:
    """k splits over disjoint user folds: each fold's users are held out of training entirely.

    Measures strong generalisation (users the model never saw), which is what a sequence encoder
    faces for new shoppers. Only users who can be evaluated (`min_interactions` different
    products) are dealt into folds, so no fold is empty; the others always train. Held-out users
    are judged as in `leave_one_out_split`, on their last new product, with the user features
    of their events before it.
    """
    if k < 2:
        raise ValueError("k must be at least 2")
    evaluated, validation_at, test_at = last_new_items(data, min_interactions)
    candidates = np.flatnonzero(evaluated)
    if k > len(candidates):
        fix = f": use at most {len(candidates)} folds" if len(candidates) >= 2 else ""
        raise ValueError(
            f"{k} folds need {k} shoppers with {min_interactions}+ different products (one per fold) "
            f"and there are {len(candidates)}{fix}."
        )
    rng = np.random.default_rng(seed)
    folds = np.array_split(rng.permutation(candidates), k)
    user_of = data.user_of_interaction()
    known_at_validation = _known_before(data, evaluated, validation_at)
    known_at_test = _known_before(data, evaluated, test_at)
    splits = []
    for i, fold in enumerate(folds):
        held_out = np.zeros(data.n_users, dtype=bool)
        held_out[fold] = True
        users = np.sort(fold)
        validation = _eval_set(data, users, validation_at, known_at_validation)
        test = _eval_set(data, users, test_at, known_at_test)
        info = {"protocol": "kfold_user", "fold": i, "k": k}
        train = data.select(~held_out[user_of])
        splits.append(Split(train, test, validation, train, info))
    return splits


def _known_before(data: InteractionData, evaluated: np.ndarray, at: np.ndarray) -> InteractionData:
    """What is known when the targets at `at` (flat indices) are predicted: every evaluated
    user's events before their target, and all events of the other users."""
    after = np.full(data.n_users, np.iinfo(np.int64).max)
    after[evaluated] = at[evaluated]
    return data.select(np.arange(data.n_interactions) < after[data.user_of_interaction()])


def _eval_set(data: InteractionData, users: np.ndarray, at: np.ndarray, known: InteractionData) -> EvalSet:
    """`users`' targets at `at`, each with what `known` (`_known_before` those targets) holds of
    the user as history and user features: the events before the target."""
    return EvalSet(
        users,
        [known.sequence(u) for u in users],
        [data.items[a : a + 1] for a in at[users]],
        _rows(known.user_features, users),
    )


def _period_eval_set(data: InteractionData, known: InteractionData, start: float, end: float) -> EvalSet:
    """Users with events in [start, end) and before it, with `known` (the events before `start`)
    as their history and user features, and the new items of the period as targets."""
    users, histories, targets = [], [], []
    for u in range(data.n_users):
        lo, hi = data.indptr[u], data.indptr[u + 1]
        ts = data.timestamps[lo:hi]
        within = (ts >= start) & (ts < end)
        history = known.sequence(u)
        if not len(history) or not within.any():
            continue
        seen = set(history.tolist())
        new = [i for i in dict.fromkeys(data.items[lo:hi][within].tolist()) if i not in seen]
        if new:
            users.append(u)
            histories.append(history)
            targets.append(np.array(new, dtype=np.int64))
    chosen = np.array(users, dtype=np.int64)
    return EvalSet(chosen, histories, targets, _rows(known.user_features, chosen))


def _rows(features: UserFeatures | None, users: np.ndarray) -> UserFeatures | None:
    return None if features is None else features.rows(users)


def _concat(parts: Iterable[Sequence], dtype: type) -> np.ndarray:
    arrays = [np.asarray(p, dtype=dtype) for p in parts]
    return np.concatenate(arrays) if arrays else np.zeros(0, dtype=dtype)


def _default_timestamps(indptr: np.ndarray) -> np.ndarray:
    """Position within the user's sequence, so that order survives time-based code paths."""
    lengths = np.diff(indptr)
    return np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
