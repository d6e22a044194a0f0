"""Behavioural tests shared by every classic recommender (in the spirit of implicit's mixin)."""

import numpy as np
import pytest
import scipy.sparse as sp

from recommendations.learning.classic import (
    ALSRecommender,
    EASERecommender,
    ItemKNNRecommender,
    PopularityRecommender,
    Recommender,
)
from recommendations.learning.dataset import InteractionData

N_ITEMS = 10  # block A = items 0-4, block B = items 5-9


def block_data(seed: int = 0) -> InteractionData:
    """30 users shop in block A and 20 in block B; each skips one random item of the block."""
    rng = np.random.default_rng(seed)
    seqs = []
    for u in range(50):
        block = np.arange(5) if u < 30 else np.arange(5, 10)
        skip = rng.integers(5)
        seqs.append([int(i) for j, i in enumerate(block) if j != skip])
    return InteractionData.from_sequences(seqs, N_ITEMS)


class RecommenderTestMixin:
    def make(self) -> Recommender:
        raise NotImplementedError

    def test_completes_the_block(self):
        model = self.make().fit(block_data())
        ids, _ = model.recommend(np.array([0, 1]), [np.array([0, 1, 2, 3]), np.array([6, 7, 8, 9])], k=1)
        assert ids[:, 0].tolist() == [4, 5]

    def test_same_block_ranks_above_other_block(self):
        model = self.make().fit(block_data())
        scores = model.score_users(np.array([0]), [np.array([0, 1])])[0]
        assert scores[[2, 3, 4]].min() > scores[[5, 6, 7, 8, 9]].max()

    def test_recommend_filters_history_and_returns_sorted_scores(self):
        model = self.make().fit(block_data())
        history = [np.array([0, 1, 2])]
        ids, scores = model.recommend(np.array([0]), history, k=5)
        assert not set(ids[0].tolist()) & {0, 1, 2}
        assert np.all(np.diff(scores[0]) <= 1e-6)
        assert model.score_users(np.array([0]), history).shape == (1, N_ITEMS)

    def test_fit_accepts_a_sparse_matrix(self):
        data = block_data()
        a = self.make().fit(data).score_users(np.array([0]), [np.array([0, 1])])
        b = self.make().fit(sp.csr_matrix(data.to_csr())).score_users(np.array([0]), [np.array([0, 1])])
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


class TestItemKNN(RecommenderTestMixin):
    def make(self):
        return ItemKNNRecommender(k=4)

    def test_keeps_k_neighbours(self):
        model = self.make().fit(block_data())
        assert np.diff(model.similarity.indptr).max() <= 4
        assert model.similarity.diagonal().sum() == 0


class TestEASE(RecommenderTestMixin):
    def make(self):
        return EASERecommender(l2=1.0)

    def test_zero_diagonal_and_matches_numpy_inverse(self):
        data = block_data()
        model = self.make().fit(data)
        x = data.to_csr().toarray().astype(np.float64)
        p = np.linalg.inv(x.T @ x + np.eye(N_ITEMS))
        expected = -p / np.diag(p)
        np.fill_diagonal(expected, 0)
        np.testing.assert_allclose(model.weights, expected, atol=1e-4)


class TestALS(RecommenderTestMixin):
    def make(self):
        return ALSRecommender(factors=4, regularization=0.1, alpha=5.0, iterations=10)

    def test_fold_in_matches_exact_least_squares(self):
        model = self.make().fit(block_data())
        y = model.item_factors.astype(np.float64)
        history = np.array([0, 1, 2])
        c = np.ones(N_ITEMS)
        c[history] = 1 + model.alpha
        p = np.zeros(N_ITEMS)
        p[history] = 1
        a = y.T @ (c[:, None] * y) + model.regularization * np.eye(4)
        x = np.linalg.solve(a, y.T @ (c * p))
        scores = model.score_users(np.array([0]), [history])[0]
        np.testing.assert_allclose(scores, y @ x, rtol=1e-3, atol=1e-4)


class TestPopularity:
    def test_most_popular_first_and_history_filtered(self):
        data = block_data()
        counts = np.bincount(data.items, minlength=N_ITEMS)
        model = PopularityRecommender().fit(data)
        ids, _ = model.recommend(np.array([0]), [np.array([], dtype=np.int64)], k=N_ITEMS)
        assert counts[ids[0]].tolist() == sorted(counts, reverse=True)
        best = int(ids[0, 0])
        ids2, _ = model.recommend(np.array([0]), [np.array([best])], k=1)
        assert ids2[0, 0] != best

    def test_time_decay_prefers_recent_items(self):
        day = 86_400
        data = InteractionData.from_sequences([[0, 0, 0, 1]], n_items=2, timestamps=[[0, 0, 0, 365 * day]])
        assert PopularityRecommender().fit(data).item_scores.argmax() == 0
        decayed = PopularityRecommender(half_life_days=30).fit(data)
        assert decayed.item_scores.argmax() == 1
        assert decayed.item_scores[1] == pytest.approx(1.0)


class TestItemKNNAllNeighbours(RecommenderTestMixin):
    def make(self):
        return ItemKNNRecommender(k=None, shrink=1.0)
