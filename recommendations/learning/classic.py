"""Classic collaborative-filtering baselines behind one small `Recommender` interface.

They are strong, cheap sanity checks for the neural model (EASE in particular is hard to
beat on small catalogues) and fallbacks when there is too little data to train it. The
interface follows `implicit`'s `RecommenderBase`: `fit` on a user x item matrix, then score
items for users, here from their item histories so that users unseen at fit time (and the
newest events) are handled by fold-in rather than by retraining.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Self

import numpy as np
import scipy.sparse as sp
from scipy.linalg import lapack

from .dataset import EvalSet, InteractionData
from .features import UserFeatures

SECONDS_PER_DAY = 86_400.0


def history_matrix(histories: Sequence[np.ndarray], n_items: int) -> sp.csr_matrix:
    """Binary user x item matrix of the given histories (one row per history)."""
    lengths = np.array([len(h) for h in histories], dtype=np.int64)
    cols = np.concatenate([np.asarray(h, np.int64) for h in histories]) if len(lengths) else []
    rows = np.repeat(np.arange(len(histories)), lengths)
    ones = np.ones(len(rows), np.float32)
    m = sp.csr_matrix((ones, (rows, cols)), shape=(len(histories), n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class Recommender:
    """Fit on interactions; score every item for users described by their histories."""

    n_items: int = 0
    uses_validation: bool = False  # early-stopping models set this (see evaluation.compare)

    def fit(self, data: InteractionData | sp.spmatrix, validation: EvalSet | None = None) -> Self:
        """Learn from `InteractionData` (weights and timestamps used) or a user x item matrix.

        `validation` is accepted for interface parity with models that early-stop; unused here.
        """
        if isinstance(data, InteractionData):
            matrix = data.to_csr()
            self.n_items = data.n_items
            self._fit(matrix, data)
        else:
            matrix = sp.csr_matrix(data, dtype=np.float32)
            self.n_items = matrix.shape[1]
            self._fit(matrix, None)
        return self

    def score_users(
        self, user_ids: np.ndarray, histories: Sequence[np.ndarray], user_features: UserFeatures | None = None
    ) -> np.ndarray:
        """Dense `[len(histories), n_items]` float32 scores (history items are not masked).

        `user_features` are accepted for interface parity with models that read them; unused here.
        """
        return self._score(history_matrix(histories, self.n_items), np.asarray(user_ids))

    def recommend(
        self,
        user_ids: np.ndarray,
        histories: Sequence[np.ndarray],
        k: int = 10,
        filter_history: bool = True,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item indices and their scores per user, best first."""
        scores = self.score_users(user_ids, histories)
        if filter_history:
            for row, h in enumerate(histories):
                scores[row, np.asarray(h, np.int64)] = -np.inf
        k = min(k, self.n_items)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(scores, part, axis=1), axis=1, kind="stable")
        ids = np.take_along_axis(part, order, axis=1)
        return ids, np.take_along_axis(scores, ids, axis=1)

    # subclasses implement these
    def _fit(self, matrix: sp.csr_matrix, data: InteractionData | None) -> None:
        raise NotImplementedError

    def _score(self, history: sp.csr_matrix, user_ids: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class PopularityRecommender(Recommender):
    """Most popular items, optionally with exponential time decay (recent sales count more)."""

    def __init__(self, half_life_days: float | None = None) -> None:
        self.half_life_days = half_life_days
        self.item_scores = np.zeros(0, np.float32)

    def _fit(self, matrix: sp.csr_matrix, data: InteractionData | None) -> None:
        if data is None or self.half_life_days is None:
            scores = np.asarray(matrix.sum(axis=0)).ravel()
        else:
            age_days = (data.timestamps.max() - data.timestamps) / SECONDS_PER_DAY
            decay = 0.5 ** (age_days / self.half_life_days)
            scores = np.bincount(data.items, data.weights * decay, minlength=data.n_items)
        self.item_scores = scores.astype(np.float32)

    def _score(self, history: sp.csr_matrix, user_ids: np.ndarray) -> np.ndarray:
        return np.tile(self.item_scores, (history.shape[0], 1))


class ItemKNNRecommender(Recommender):
    """Item-item cosine similarity on co-occurrence, keeping each item's k nearest neighbours.

    score(user, j) = sum over history items i of sim(i, j). `k=None` keeps every neighbour;
    `shrink` damps similarities that rest on few co-occurrences.
    """

    def __init__(self, k: int | None = 100, shrink: float = 0.0) -> None:
        self.k = k
        self.shrink = shrink
        self.similarity = sp.csr_matrix((0, 0), dtype=np.float32)

    def _fit(self, matrix: sp.csr_matrix, data: InteractionData | None) -> None:
        x = matrix.astype(np.float32)
        co = (x.T @ x).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=0)).ravel())
        co = co.tocoo()
        sim = co.data / (norms[co.row] * norms[co.col] + self.shrink + 1e-12)
        sim[co.row == co.col] = 0.0
        full = sp.csr_matrix((sim.astype(np.float32), (co.row, co.col)), shape=co.shape)
        self.similarity = full if self.k is None else _keep_top_k_per_row(full, self.k)

    def _score(self, history: sp.csr_matrix, user_ids: np.ndarray) -> np.ndarray:
        return np.asarray((history @ self.similarity).todense(), dtype=np.float32)


class EASERecommender(Recommender):
    """EASE (Steck, 2019): closed-form item-item ridge regression with a zero diagonal.

    Needs an n_items x n_items dense inverse, so it suits catalogues up to a few 10k items.
    """

    def __init__(self, l2: float = 500.0) -> None:
        self.l2 = l2
        self.weights = np.zeros((0, 0), np.float32)

    def _fit(self, matrix: sp.csr_matrix, data: InteractionData | None) -> None:
        gram = np.asarray((matrix.T @ matrix).todense(), dtype=np.float32)
        gram[np.diag_indices_from(gram)] += self.l2
        p = _spd_inverse(gram)
        p /= -np.diag(p)[None, :]
        p[np.diag_indices_from(p)] = 0.0
        self.weights = p

    def _score(self, history: sp.csr_matrix, user_ids: np.ndarray) -> np.ndarray:
        return np.asarray(history @ self.weights, dtype=np.float32)


class ALSRecommender(Recommender):
    """Implicit-feedback ALS (Hu, Koren, Volinsky 2008) solved with conjugate gradient.

    Confidence is `1 + alpha * weight`. Like `implicit`, each half-step runs a few CG steps per
    row warm-started from the previous factors; all rows are solved at once with sparse
    products, so an iteration costs O(nnz * factors). Users are represented by folding their
    history into the item factors, so new events are used without retraining.
    """

    def __init__(
        self,
        factors: int = 64,
        regularization: float = 0.01,
        alpha: float = 1.0,
        iterations: int = 15,
        cg_steps: int = 3,
        fold_in_steps: int = 32,
        seed: int = 0,
    ) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.cg_steps = cg_steps
        self.fold_in_steps = fold_in_steps
        self.seed = seed
        self.item_factors = np.zeros((0, factors), np.float32)
        self.user_factors = np.zeros((0, factors), np.float32)

    def _fit(self, matrix: sp.csr_matrix, data: InteractionData | None) -> None:
        rng = np.random.default_rng(self.seed)
        n_users, n_items = matrix.shape
        users = rng.normal(0, 0.01, (n_users, self.factors))
        items = rng.normal(0, 0.01, (n_items, self.factors))
        by_item = matrix.T.tocsr()
        for _ in range(self.iterations):
            users = self._solve(matrix, items, users, self.cg_steps)
            items = self._solve(by_item, users, items, self.cg_steps)
        self.user_factors = users.astype(np.float32)
        self.item_factors = items.astype(np.float32)

    def _solve(self, m: sp.csr_matrix, other: np.ndarray, x: np.ndarray, steps: int) -> np.ndarray:
        """CG steps on (Y'Y + Y' (C - I) Y + reg I) x_u = Y' C p_u for every row u at once."""
        f = other.shape[1]
        gram = other.T @ other + self.regularization * np.eye(f)
        matrix = sp.csr_matrix(m, dtype=np.float64)
        rows = np.repeat(np.arange(matrix.shape[0]), np.diff(matrix.indptr))
        conf = 1.0 + self.alpha * matrix.data
        y = other[matrix.indices]
        shape = matrix.shape

        def apply(p: np.ndarray) -> np.ndarray:
            dots = np.einsum("nf,nf->n", y, p[rows]) * (conf - 1.0)
            return p @ gram + sp.csr_matrix((dots, matrix.indices, matrix.indptr), shape) @ other

        b = sp.csr_matrix((conf, matrix.indices, matrix.indptr), shape) @ other
        x = x.copy()
        r = b - apply(x)
        p = r.copy()
        rs_old = np.einsum("nf,nf->n", r, r)
        for _ in range(steps):
            ap = apply(p)
            denom = np.einsum("nf,nf->n", p, ap)
            step = np.divide(rs_old, denom, out=np.zeros_like(rs_old), where=denom > 1e-20)
            x += step[:, None] * p
            r -= step[:, None] * ap
            rs_new = np.einsum("nf,nf->n", r, r)
            beta = np.divide(rs_new, rs_old, out=np.zeros_like(rs_new), where=rs_old > 1e-20)
            p = r + beta[:, None] * p
            rs_old = rs_new
        return x

    def _score(self, history: sp.csr_matrix, user_ids: np.ndarray) -> np.ndarray:
        items = self.item_factors.astype(np.float64)
        start = np.zeros((history.shape[0], items.shape[1]))
        users = self._solve(history, items, start, self.fold_in_steps)
        return (users @ items.T).astype(np.float32)


def _spd_inverse(matrix: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive-definite matrix via Cholesky (about 2x faster than LU).

    Single precision is enough for a ridge-regularised Gram matrix; double is the fallback.
    """
    for dtype, potrf, potri in (
        (np.float32, lapack.spotrf, lapack.spotri),
        (np.float64, lapack.dpotrf, lapack.dpotri),
    ):
        chol, info = potrf(matrix.astype(dtype, copy=False), lower=True, overwrite_a=False)
        if info == 0:
            inv, info = potri(chol, lower=True, overwrite_c=True)
            if info == 0:
                lower = np.tril(inv)
                return lower + np.tril(inv, -1).T
    raise np.linalg.LinAlgError("matrix is not positive definite")


def _keep_top_k_per_row(matrix: sp.csr_matrix, k: int) -> sp.csr_matrix:
    """Zero all but the k largest entries of each row."""
    matrix = matrix.tocsr()
    matrix.sort_indices()
    rows, cols, vals = [], [], []
    for r in range(matrix.shape[0]):
        lo, hi = matrix.indptr[r], matrix.indptr[r + 1]
        data = matrix.data[lo:hi]
        idx = matrix.indices[lo:hi]
        if len(data) > k:
            keep = np.argpartition(-data, k - 1)[:k]
            data, idx = data[keep], idx[keep]
        rows.append(np.full(len(idx), r))
        cols.append(idx)
        vals.append(data)
    if not rows:
        return sp.csr_matrix(matrix.shape, dtype=np.float32)
    return sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=matrix.shape,
        dtype=np.float32,
    )
