import math

import numpy as np
import pytest

from recommendations.learning.classic import PopularityRecommender
from recommendations.learning.dataset import EvalSet, InteractionData, leave_one_out_split
from recommendations.learning.evaluation import (
    compare,
    evaluate,
    item_probabilities,
    ranked_lists,
    ranking_metrics,
    top_k,
)
from recommendations.learning.features import UserFeatures

L3 = 1 / math.log2(3)
L5 = 1 / math.log2(5)


def test_metrics_match_hand_computed_values():
    top = np.array([[3, 1, 4, 0], [2, 5, 0, 1]])
    targets = [np.array([1]), np.array([5, 1])]
    probs = np.array([0.5, 0.25, 1.0, 0.125, 0.5, 0.0625])  # -log2: 1, 2, 0, 3, 1, 4
    m = ranking_metrics(top, targets, n_items=6, ks=(2, 4), item_probs=probs)
    assert m["HR@2"] == pytest.approx(1.0)
    assert m["NDCG@2"] == pytest.approx((L3 + L3 / (1 + L3)) / 2)
    assert m["precision@2"] == pytest.approx(0.5)
    assert m["recall@2"] == pytest.approx(0.75)
    assert m["MAP@2"] == pytest.approx((0.5 + 0.25) / 2)
    assert m["coverage@2"] == pytest.approx(4 / 6)
    assert m["novelty@2"] == pytest.approx((3 + 2 + 0 + 4) / 4)
    assert m["HR@4"] == pytest.approx(1.0)
    assert m["NDCG@4"] == pytest.approx((L3 + (L3 + L5) / (1 + L3)) / 2)
    assert m["precision@4"] == pytest.approx(0.375)
    assert m["recall@4"] == pytest.approx(1.0)
    assert m["MAP@4"] == pytest.approx(0.5)
    assert m["coverage@4"] == pytest.approx(1.0)
    assert m["novelty@4"] == pytest.approx((3 + 2 + 1 + 1 + 0 + 4 + 1 + 2) / 8)


def test_misses_score_zero():
    m = ranking_metrics(np.array([[0, 1]]), [np.array([5])], n_items=6, ks=(2,))
    assert m["HR@2"] == m["NDCG@2"] == m["MAP@2"] == m["precision@2"] == 0.0


def test_top_k_orders_best_first():
    scores = np.array([[0.1, 0.9, 0.5, 0.7]])
    assert top_k(scores, 3).tolist() == [[1, 3, 2]]


class FixedScorer:
    """Same scores for everyone: item 0 best, then 1, 2, ..."""

    def __init__(self, n_items):
        self.n_items = n_items

    def score_users(self, user_ids, histories):
        return np.tile(np.arange(self.n_items, 0, -1, dtype=np.float32), (len(histories), 1))


def test_evaluate_masks_history_and_batches():
    eval_set = EvalSet(
        users=np.array([0, 1, 2]),
        histories=[np.array([0]), np.array([], dtype=np.int64), np.array([1, 0])],
        targets=[np.array([1]), np.array([0]), np.array([3])],
    )
    m = evaluate(FixedScorer(5), eval_set, n_items=5, ks=(1, 2), batch_size=2)
    # user 0: ranking 1,2,.. (0 masked) -> hit at 1; user 1: hit at 1; user 2: 2,3 -> hit at 2
    assert m["HR@1"] == pytest.approx(2 / 3)
    assert m["HR@2"] == pytest.approx(1.0)
    assert m["NDCG@2"] == pytest.approx((1 + 1 + L3) / 3)
    unmasked = evaluate(FixedScorer(5), eval_set, 5, ks=(1,), exclude_history=False)
    assert unmasked["HR@1"] == pytest.approx(1 / 3)


class FeatureScorer:
    """Ranks first the item named by the user's first feature id: shows which features it got."""

    def score_users(self, user_ids, histories, user_features):
        scores = np.zeros((len(histories), 6), np.float32)
        scores[np.arange(len(histories)), user_features.ids[:, 0]] = 1.0
        return scores


def test_evaluate_scores_with_the_eval_sets_own_user_features():
    # Features as known at each target; user 1 has no target and is left out.
    features = UserFeatures(np.array([[3], [0], [5], [2]]), np.ones((4, 1), np.float32), 6)
    eval_set = EvalSet(
        users=np.array([7, 8, 9, 10]),
        histories=[np.array([0])] * 4,
        targets=[np.array([3]), np.array([], dtype=np.int64), np.array([5]), np.array([4])],
        user_features=features,
    )
    m = evaluate(FeatureScorer(), eval_set, n_items=6, ks=(1,), batch_size=2)
    assert m["n_users"] == 3
    assert m["HR@1"] == pytest.approx(2 / 3)  # users 7 and 9: their own feature names the target


def test_a_catalogue_smaller_than_k_is_ranked_whole():
    eval_set = EvalSet(np.array([0, 1]), [np.array([0]), np.array([1])], [np.array([3]), np.array([2])])
    m = evaluate(FixedScorer(4), eval_set, n_items=4, ks=(10, 20))
    # user 0: 1, 2, 3 -> hit at 3; user 1: 0, 2, 3 -> hit at 2
    assert m["HR@10"] == m["HR@20"] == pytest.approx(1.0)
    assert m["NDCG@10"] == pytest.approx((0.5 + L3) / 2)
    assert m["precision@10"] == pytest.approx(0.1)


def test_coverage_and_novelty_leave_out_masked_history_items():
    # 4 products; both shoppers have seen product 0, so only 1, 2 and 3 can be recommended.
    eval_set = EvalSet(np.array([0, 1]), [np.array([0, 1]), np.array([0])], [np.array([2]), np.array([3])])
    probs = np.array([1.0, 0.5, 0.25, 0.125])  # -log2: 0, 1, 2, 3
    m = evaluate(FixedScorer(4), eval_set, n_items=4, ks=(4,), item_probs=probs)
    assert m["coverage@4"] == pytest.approx(3 / 4)
    assert m["novelty@4"] == pytest.approx((2 + 3 + 1 + 2 + 3) / 5)
    assert m["HR@4"] == pytest.approx(1.0)


def test_ranked_lists_leave_masked_items_out():
    scores = np.array([[-np.inf, 0.5, -np.inf], [0.1, 0.2, 0.3]], dtype=np.float32)
    assert ranked_lists(scores, 5).tolist() == [[1, -1, -1], [2, 1, 0]]


def test_a_target_in_the_history_is_never_a_hit():
    eval_set = EvalSet(np.array([0]), [np.array([0])], [np.array([0])])
    m = evaluate(FixedScorer(2), eval_set, n_items=2, ks=(2,))
    assert m["HR@2"] == 0.0 and m["coverage@2"] == pytest.approx(1 / 2)


def test_item_probabilities_count_distinct_users():
    data = InteractionData.from_sequences([[0, 0, 1], [1], []], n_items=3)
    assert item_probabilities(data).tolist() == pytest.approx([0.5, 1.0, 0.5])  # 0 -> 1 user


def test_compare_returns_rows_and_prints_a_table():
    seqs = [[0, 1, 2, 3], [0, 1, 2, 4], [0, 2, 1, 3], [1, 0, 2, 3]]
    split = leave_one_out_split(InteractionData.from_sequences(seqs, n_items=5))
    lines = []
    rows = compare({"pop": PopularityRecommender()}, split, ks=(1, 2), log=lines.append)
    assert rows[0]["model"] == "pop" and rows[0]["train_s"] >= 0
    assert 0.0 <= rows[0]["HR@2"] <= 1.0
    assert lines[-1].startswith("| model | HR@1 | HR@2")
