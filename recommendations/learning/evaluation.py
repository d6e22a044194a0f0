"""Offline evaluation with the full-ranking protocol of the sequential-recommendation papers.

Every candidate item is ranked (no sampled negatives, which overstate quality and can reorder
models), and items already in the user's history are removed from the ranking. Any object
with `score_users(user_ids, histories) -> [n_users, n_items]` can be evaluated; when the
evaluation set carries user features it is also given them, as `user_features=`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import numpy as np

from .dataset import EvalSet, InteractionData, Split
from .features import UserFeatures


class Scorer(Protocol):
    def score_users(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], user_features: UserFeatures | None = None
    ) -> np.ndarray:
        """Scores of every item for each user (higher = more relevant). `user_features` (rows
        aligned with the users) are what is known of them when their targets are predicted."""
        ...


def item_probabilities(train: InteractionData) -> np.ndarray:
    """Share of training users who touched each item (never 0), the base of novelty."""
    counts = train.item_popularity().astype(np.float64)
    n_users = max(int((train.lengths() > 0).sum()), 1)
    return np.maximum(counts, 1.0) / n_users


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k highest scores per row, best first (fewer columns if fewer items)."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def ranked_lists(scores: np.ndarray, k: int) -> np.ndarray:
    """The top-k lists that are evaluated: `top_k`, with -1 where a masked (-inf) item would be.

    When the catalogue minus a user's history is smaller than k, `top_k` fills the list with
    masked history items; counting those would inflate coverage and novelty (and a masked
    target would count as a hit), so they become empty slots.
    """
    top = top_k(scores, k)
    top[np.isneginf(np.take_along_axis(scores, top, axis=1))] = -1
    return top


def ranking_metrics(
    top_items: np.ndarray,
    targets: Sequence[np.ndarray],
    n_items: int,
    ks: Sequence[int] = (10, 20),
    item_probs: np.ndarray | None = None,
) -> dict[str, float]:
    """Metrics from ranked lists (`top_items[j]` best first) and each user's target items.

    HR@k (any target in the top k), NDCG@k (binary gains, ideal DCG over min(k, |targets|)),
    precision@k (hits / k), recall@k (hits / |targets|), MAP@k (sum of precision at each hit /
    min(k, |targets|)), coverage@k (share of the catalogue recommended to anyone) and novelty@k
    (mean -log2 p(item) over recommended items, p from `item_probs`).

    A list may be shorter than k, or hold -1 in empty slots: the catalogue minus the user's
    history can be smaller than k (see `ranked_lists`). Empty slots are misses and are left out
    of coverage and novelty; precision@k still divides by k.
    """
    n = len(targets)
    kmax = max(ks)
    top_items = np.asarray(top_items, dtype=np.int64)
    if top_items.shape[1] < kmax:  # a catalogue smaller than k
        top_items = np.pad(top_items, ((0, 0), (0, kmax - top_items.shape[1])), constant_values=-1)
    rel = np.zeros((n, kmax), dtype=bool)
    n_targets = np.zeros(n, dtype=np.float64)
    for j, t in enumerate(targets):
        t = np.unique(np.asarray(t))
        n_targets[j] = len(t)
        rel[j] = np.isin(top_items[j, :kmax], t)
    discounts = 1.0 / np.log2(np.arange(2, kmax + 2))
    out: dict[str, float] = {}
    for k in ks:
        r = rel[:, :k]
        hits = r.sum(1)
        ideal = np.minimum(n_targets, k)
        idcg = np.concatenate([[0.0], np.cumsum(discounts[:k])])[ideal.astype(int)]
        prec_at = np.cumsum(r, axis=1) / np.arange(1, k + 1)
        out[f"HR@{k}"] = float(np.mean(hits > 0))
        out[f"NDCG@{k}"] = float(np.mean((r * discounts[:k]).sum(1) / idcg))
        out[f"precision@{k}"] = float(np.mean(hits / k))
        out[f"recall@{k}"] = float(np.mean(hits / n_targets))
        out[f"MAP@{k}"] = float(np.mean((prec_at * r).sum(1) / ideal))
        listed = top_items[:, :k][top_items[:, :k] >= 0]
        out[f"coverage@{k}"] = float(len(np.unique(listed)) / n_items)
        if item_probs is not None:
            novelty = -np.log2(item_probs[listed])
            out[f"novelty@{k}"] = float(np.mean(novelty)) if len(novelty) else float("nan")
    out["n_users"] = float(n)
    return out


def evaluate(
    model: Scorer,
    eval_set: EvalSet,
    n_items: int,
    ks: Sequence[int] = (10, 20),
    item_probs: np.ndarray | None = None,
    batch_size: int = 1024,
    exclude_history: bool = True,
) -> dict[str, float]:
    """Full-ranking metrics of `model` on `eval_set`, scoring users in batches, with the user
    features of the evaluation set (those known at each target), never the model's own rows."""
    eval_set = eval_set.take(np.flatnonzero([len(t) > 0 for t in eval_set.targets]))
    if not len(eval_set):
        raise ValueError("nothing to evaluate: no user has a target item")
    kmax = max(ks)
    tops = []
    for start in range(0, len(eval_set), batch_size):
        batch = eval_set.take(np.arange(start, min(start + batch_size, len(eval_set))))
        hist = batch.histories
        known = {} if batch.user_features is None else {"user_features": batch.user_features}
        scores = np.array(model.score_users(batch.users, hist, **known), dtype=np.float32)
        if exclude_history:
            rows = np.repeat(np.arange(len(hist)), [len(h) for h in hist])
            cols = np.concatenate(hist).astype(np.int64) if hist else np.zeros(0, np.int64)
            scores[rows, cols] = -np.inf
        tops.append(ranked_lists(scores, kmax))
    return ranking_metrics(np.concatenate(tops), eval_set.targets, n_items, ks, item_probs)


def compare(
    models: Mapping[str, Scorer],
    split: Split,
    ks: Sequence[int] = (10, 20),
    fit: bool = True,
    log: Callable[[str], None] | None = print,
) -> list[dict[str, float | str]]:
    """Fit (if `fit`) and evaluate several models on the same split; one row per model.

    Models that early-stop (`uses_validation = True`) are fitted with
    `model.fit(split.train, split.validation)`; the others learn from every interaction known at
    test time, `split.train_with_validation`. The wall time of the fit is reported as `train_s`.
    Returns the rows and, with `log`, prints them as one table.
    """
    probs = item_probabilities(split.train)
    rows: list[dict[str, float | str]] = []
    for name, model in models.items():
        train_s = float("nan")
        if fit:
            t0 = time.perf_counter()
            if getattr(model, "uses_validation", False) or split.train_with_validation is None:
                model.fit(split.train, split.validation)  # type: ignore[attr-defined]
            else:
                model.fit(split.train_with_validation)  # type: ignore[attr-defined]
            train_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        metrics = evaluate(model, split.test, split.train.n_items, ks, probs)
        row: dict[str, float | str] = {"model": name, **metrics, "train_s": train_s}
        row["eval_s"] = time.perf_counter() - t0
        rows.append(row)
        if log is not None:
            log(f"{name}: " + ", ".join(f"{k}={_fmt(v)}" for k, v in row.items() if k != "model"))
    if log is not None:
        log(format_table(rows, ks))
    return rows


def format_table(rows: Sequence[Mapping[str, float | str]], ks: Sequence[int] = (10, 20)) -> str:
    """A Markdown table of the headline columns."""
    k0 = ks[0]
    cols = [f"HR@{k}" for k in ks] + [f"NDCG@{k}" for k in ks]
    cols += [f"precision@{k0}", f"MAP@{k0}", f"coverage@{k0}", f"novelty@{k0}", "train_s"]
    lines = ["| model | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for row in rows:
        cells = [_fmt(row.get(c, float("nan")), c) for c in cols]
        lines.append(f"| {row['model']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value: float | str, column: str = "") -> str:
    if isinstance(value, str):
        return value
    if column in ("train_s", "eval_s") or column.startswith("novelty"):
        return f"{value:.1f}"
    return f"{value:.4f}"
