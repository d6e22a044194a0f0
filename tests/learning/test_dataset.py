import numpy as np
import pytest

from recommendations.learning.dataset import (
    InteractionData,
    Split,
    kfold_user_split,
    last_new_items,
    leave_one_out_split,
    temporal_split,
)
from recommendations.learning.features import RFMFeaturizer, rfm_user_features


def small_data() -> InteractionData:
    # user 0: 5 events, user 1: 2 events (too few to evaluate), user 2: 3 events
    return InteractionData.from_sequences(
        [[0, 1, 2, 3, 4], [5, 6], [7, 8, 9]],
        n_items=10,
        timestamps=[[10, 20, 30, 40, 50], [15, 25], [35, 45, 55]],
        weights=[[1, 1, 2, 1, 1], [1, 1], [0.5, 1, 1]],
    )


def test_from_arrays_sorts_by_user_then_time_stably():
    data = InteractionData.from_arrays(
        user_ids=[1, 0, 1, 0, 0],
        item_ids=[3, 2, 4, 1, 0],
        timestamps=[5, 9, 1, 9, 3],
        n_items=5,
    )
    assert data.n_users == 2
    assert data.sequence(0).tolist() == [0, 2, 1]  # t=3, then the two t=9 in given order
    assert data.sequence(1).tolist() == [4, 3]


def test_rejects_out_of_range_items():
    with pytest.raises(ValueError):
        InteractionData.from_sequences([[0, 5]], n_items=5)


def test_to_csr_sums_weights():
    data = InteractionData.from_sequences([[1, 1, 2]], n_items=3, weights=[[0.5, 1.0, 2.0]])
    m = data.to_csr()
    assert m[0, 1] == pytest.approx(1.5) and m[0, 2] == pytest.approx(2.0)
    assert data.to_csr(binary=True)[0, 1] == 1.0


def test_leave_one_out():
    split = leave_one_out_split(small_data())
    assert split.test.users.tolist() == [0, 2]
    assert [t.tolist() for t in split.test.targets] == [[4], [9]]
    assert [h.tolist() for h in split.test.histories] == [[0, 1, 2, 3], [7, 8]]
    assert [t.tolist() for t in split.validation.targets] == [[3], [8]]
    assert [h.tolist() for h in split.validation.histories] == [[0, 1, 2], [7]]
    train = split.train
    assert [train.sequence(u).tolist() for u in range(3)] == [[0, 1, 2], [5, 6], [7]]
    assert train.weights[train.indptr[0] : train.indptr[1]].tolist() == [1, 1, 2]
    full = split.train_with_validation
    assert [full.sequence(u).tolist() for u in range(3)] == [[0, 1, 2, 3], [5, 6], [7, 8]]


def repeat_data() -> InteractionData:
    """Shoppers who come back to products they already touched (a view, then a purchase)."""
    return InteractionData.from_sequences(
        [[0, 1, 2, 1], [5, 5, 5, 5, 5], [0, 3, 0, 4, 4], [6, 7, 6]],
        n_items=8,
        weights=[[1, 1, 1, 3], [1, 1, 1, 1, 3], [1, 1, 3, 1, 3], [1, 1, 3]],
    )


def test_leave_one_out_holds_out_the_last_new_product_never_a_repeat():
    split = leave_one_out_split(repeat_data())
    # Distinct products, first occurrence kept: user 0 [0, 1, 2], user 2 [0, 3, 4]. User 1 has
    # one product and user 3 two: too few to evaluate, all their events train.
    assert split.test.users.tolist() == [0, 2]
    assert [t.tolist() for t in split.test.targets] == [[2], [4]]
    assert [h.tolist() for h in split.test.histories] == [[0, 1], [0, 3, 0]]
    assert [t.tolist() for t in split.validation.targets] == [[1], [3]]
    assert [h.tolist() for h in split.validation.histories] == [[0], [0]]
    for eval_set in (split.test, split.validation):
        for history, target in zip(eval_set.histories, eval_set.targets, strict=True):
            assert target[0] not in history  # masked from the ranking otherwise: a sure miss
    train = split.train
    assert [train.sequence(u).tolist() for u in range(4)] == [[0], [5, 5, 5, 5, 5], [0], [6, 7, 6]]
    full = split.train_with_validation
    assert [full.sequence(u).tolist() for u in range(4)] == [[0, 1], [5, 5, 5, 5, 5], [0, 3, 0], [6, 7, 6]]
    # The repeat of product 0 before the validation target keeps its purchase weight.
    assert full.weights[full.indptr[2] : full.indptr[3]].tolist() == [1, 1, 3]


def test_temporal_split_uses_global_cutoffs():
    split = temporal_split(small_data(), test_fraction=0.3, validation_fraction=0.2)
    t_val, t_test = split.info["t_validation"], split.info["t_test"]
    assert t_val < t_test
    assert split.train.timestamps.max() < t_val
    for u, hist, targets in zip(split.test.users, split.test.histories, split.test.targets, strict=True):
        seq = small_data().sequence(u)
        ts = small_data().timestamps[small_data().indptr[u] : small_data().indptr[u + 1]]
        assert hist.tolist() == seq[ts < t_test].tolist()
        assert set(targets.tolist()) == set(seq[ts >= t_test].tolist())
    assert len(split.test) > 0
    assert split.train_with_validation.timestamps.max() < t_test


def test_kfold_user_split_holds_out_whole_users():
    data = InteractionData.from_sequences([[i % 7, (i + 1) % 7, (i + 2) % 7] for i in range(20)], 7)
    splits = kfold_user_split(data, k=4, seed=1)
    assert len(splits) == 4
    seen = []
    for split in splits:
        held = split.test.users
        assert len(held) == 5
        assert all(len(split.train.sequence(u)) == 0 for u in held)
        others = np.setdiff1d(np.arange(20), held)
        assert all(len(split.train.sequence(u)) == 3 for u in others)
        assert [t.tolist() for t in split.test.targets] == [[data.sequence(u)[-1]] for u in held]
        seen.extend(held.tolist())
    assert sorted(seen) == list(range(20))


def test_kfold_judges_held_out_shoppers_on_their_last_new_product():
    splits = kfold_user_split(repeat_data(), k=2, seed=0)
    held = sorted(u for split in splits for u in split.test.users.tolist())
    assert held == [0, 2]  # only shoppers who can be evaluated are dealt into folds
    for split in splits:
        (user,) = split.test.users.tolist()
        assert split.test.targets[0].tolist() == {0: [2], 2: [4]}[user]
        assert split.validation.targets[0].tolist() == {0: [1], 2: [3]}[user]
        assert len(split.train.sequence(user)) == 0
        assert [len(split.train.sequence(u)) for u in (1, 3)] == [5, 3]  # never evaluated: always train


def test_kfold_refuses_more_folds_than_shoppers_to_evaluate():
    with pytest.raises(ValueError, match=r"3 folds need 3 shoppers .* there are 2: use at most 2 folds"):
        kfold_user_split(repeat_data(), k=3)


DAY = 86_400


def shop_events(timestamps: np.ndarray | None = None, revenue: np.ndarray | None = None) -> InteractionData:
    """Eight shoppers with 4-7 events each, interleaved in time over a month, with spend; user
    features derived from the events (RFM as of the day after the last event)."""
    rng = np.random.default_rng(5)
    users = np.repeat(np.arange(8), [4, 5, 6, 7, 4, 5, 6, 7])
    position = np.concatenate([np.arange(n) for n in np.bincount(users)])
    items = np.concatenate([rng.choice(12, n, replace=False) for n in np.bincount(users)])
    if timestamps is None:
        timestamps = position * 4 * DAY + users * 3_600
    if revenue is None:
        revenue = rng.integers(1, 40, len(users)) * 5.0
    return InteractionData.from_arrays(
        users,
        items,
        timestamps,
        n_items=12,
        revenue=revenue,
        user_featurizer=RFMFeaturizer(now=30 * DAY, spend=True),
    )


def split_inputs(split: Split) -> list:
    """Everything a model is fitted or scored with on `split` (what evaluation may depend on)."""
    inputs: list = []
    for part in (split.train, split.train_with_validation):
        arrays = (
            part.indptr,
            part.items,
            part.weights,
            part.timestamps,
            part.revenue,
            part.user_features.ids,
        )
        inputs += [a.tolist() for a in arrays]
    for eval_set in (split.validation, split.test):
        inputs += [eval_set.users.tolist(), [h.tolist() for h in eval_set.histories]]
        inputs += [[t.tolist() for t in eval_set.targets], eval_set.user_features.ids.tolist()]
    return inputs


def held_out_at_test(data: InteractionData, split: Split) -> np.ndarray:
    """Flat indices (in `shop_events` order, which `from_arrays` keeps) of the test targets."""
    if split.info["protocol"] == "temporal":
        return np.flatnonzero(data.timestamps > split.info["t_test"])
    _, _, test_at = last_new_items(data)
    return test_at[split.test.users]


SPLITS = {
    "leave_one_out": lambda data: [leave_one_out_split(data)],
    "temporal": lambda data: [temporal_split(data)],
    "kfold_user": lambda data: kfold_user_split(data, k=2),
}


@pytest.mark.parametrize("protocol", SPLITS)
def test_test_targets_change_nothing_a_model_is_fitted_or_scored_with(protocol):
    data = shop_events()
    for fold, split in enumerate(SPLITS[protocol](data)):
        held_out = held_out_at_test(data, split)
        assert len(held_out)
        # Later (still in order) and a hundred times dearer: the features of all events would move.
        timestamps, revenue = data.timestamps.copy(), data.revenue.copy()
        timestamps[held_out] += 3_600
        revenue[held_out] *= 100
        changed = shop_events(timestamps, revenue)
        assert changed.user_features.ids.tolist() != data.user_features.ids.tolist()
        assert split_inputs(SPLITS[protocol](changed)[fold]) == split_inputs(split)


def test_leave_one_out_user_features_are_those_of_the_events_before_each_target():
    data = shop_events()
    split = leave_one_out_split(data)
    known = {"validation": split.train, "test": split.train_with_validation}
    for name, eval_set in (("validation", split.validation), ("test", split.test)):
        for j, user in enumerate(eval_set.users):
            lo, hi = data.indptr[user], data.indptr[user] + len(eval_set.histories[j])
            expected = rfm_user_features(
                last_seen=data.timestamps[hi - 1 : hi],
                frequency=np.array([hi - lo]),
                spend=data.revenue[lo:hi].sum(keepdims=True),
                now=30 * DAY,
            )
            assert eval_set.user_features.ids[j].tolist() == expected.ids[0].tolist()
        # What the model trains on (training) and the baselines learn from (test) agree.
        assert eval_set.user_features.ids.tolist() == known[name].user_features.ids[eval_set.users].tolist()
