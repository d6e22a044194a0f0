import json
import pickle
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from recommendations.learning import artifacts
from recommendations.learning.dataset import InteractionData, leave_one_out_split
from recommendations.learning.features import rfm_user_features
from recommendations.learning.two_tower import (
    TrainConfig,
    TrainingError,
    TwoTowerRecommender,
    full_softmax_loss,
    resolve_device,
    sampled_softmax_loss,
)

from .conftest import ITEMS_PER_STORE, N_STORES, store_item, store_of, store_sequences

SMALL = {
    "dim": 32,
    "n_layers": 1,
    "n_heads": 2,
    "ffn_dim": 64,
    "max_len": 12,
    "dropout": 0.1,
    "id_dropout": 0.3,
    "batch_size": 32,
    "lr": 5e-3,
    "epochs": 10,
    "patience": 100,
    "seed": 7,
    "num_threads": 1,  # tiny models: threads only add synchronisation
}


def fit_small(data, validation=None, **overrides):
    return TwoTowerRecommender(TrainConfig(**{**SMALL, **overrides})).fit(data, validation)


@pytest.fixture(scope="module")
def trained():
    from recommendations.learning.features import ItemFeaturizer

    from .conftest import store_catalogue

    seqs, _ = store_sequences(240)
    featurizer = ItemFeaturizer()
    data = InteractionData.from_sequences(
        seqs, N_STORES * ITEMS_PER_STORE, item_features=featurizer.fit_transform(store_catalogue())
    )
    return fit_small(data), data, featurizer


def test_recovers_planted_store_structure(trained):
    model, _, _ = trained
    seqs, stores = store_sequences(80, seed=99, length=(2, 5), switch=0.0)
    ids, _ = model.recommend(np.arange(80), [np.array(s) for s in seqs], k=5)
    same_store = (store_of(ids) == stores[:, None]).mean()
    assert same_store > 0.9  # random would be 0.25


def test_follows_the_most_recent_items(trained):
    model, _, _ = trained
    # Four items from one store, then two from another: the next item comes from the second.
    rng = np.random.default_rng(4)
    histories, latest = [], []
    for _ in range(60):
        a, b = rng.choice(N_STORES, 2, replace=False)
        old = a * ITEMS_PER_STORE + rng.choice(ITEMS_PER_STORE, 4, replace=False)
        new = b * ITEMS_PER_STORE + rng.choice(ITEMS_PER_STORE, 2, replace=False)
        histories.append(np.concatenate([old, new]))
        latest.append(b)
    ids, _ = model.recommend(np.arange(60), histories, k=5)
    assert (store_of(ids) == np.array(latest)[:, None]).mean() > 0.8


def test_new_item_is_placed_by_content_alone(trained):
    model, _, featurizer = trained
    cold = featurizer.transform([store_item(s, 0, cold=True) for s in range(N_STORES)])
    vectors = model.content_item_vectors(cold)
    assert vectors.shape == (N_STORES, SMALL["dim"] + 1)
    seqs, stores = store_sequences(200, seed=3, length=(3, 5), switch=0.0)
    users = model.user_vectors(seqs)
    scores = users @ vectors.T  # [users, cold items]
    for s in range(N_STORES):
        mean_by_store = [scores[stores == t, s].mean() for t in range(N_STORES)]
        assert int(np.argmax(mean_by_store)) == s
    # ... and each store's shoppers rank their store's new item first among the new items.
    assert (scores.argmax(1) == stores).mean() > 0.8


def test_vectors_fold_the_bias_so_inner_product_is_the_score(trained):
    model, _, _ = trained
    histories = [np.array([0, 1, 2]), np.array([30, 31])]
    scores = model.score_users(np.array([0, 1]), histories)
    inner = model.user_vectors(histories) @ model.item_vectors().T
    np.testing.assert_allclose(inner, scores, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model.user_vector([0, 1, 2]), model.user_vectors(histories)[0], atol=1e-5)
    # An empty history falls back to the item biases (a popularity-like prior).
    empty = model.user_vectors([[]])
    assert np.allclose(empty[0, :-1], 0) and empty[0, -1] == 1


def test_seeded_training_is_reproducible(store_data):
    data, _, _ = store_data
    a = fit_small(data, epochs=1).item_vectors()
    b = fit_small(data, epochs=1).item_vectors()
    np.testing.assert_array_equal(a, b)
    c = fit_small(data, epochs=1, seed=8).item_vectors()
    assert not np.array_equal(a, c)


def test_early_stopping_callback_and_best_weights(store_data):
    data, _, _ = store_data
    split = leave_one_out_split(data)
    logs = []
    model = TwoTowerRecommender(TrainConfig(**{**SMALL, "epochs": 12, "patience": 2}))
    model.fit(split.train, split.validation, callback=logs.append)
    assert logs and [log.epoch for log in logs] == list(range(1, len(logs) + 1))
    assert all(log.seconds >= 0 and np.isfinite(log.loss) for log in logs)
    best = max(log.val_metric for log in logs)
    assert model.best_metric == pytest.approx(best)
    if len(logs) < 12:  # stopped early: `patience` epochs without improvement
        assert logs[-1].epoch - model.best_epoch == 2
    assert model._validate(split.validation) == pytest.approx(best, abs=1e-6)


@pytest.mark.parametrize("n_items", [5, 15])
def test_early_stopping_on_a_catalogue_smaller_than_metric_k(n_items):
    rng = np.random.default_rng(0)
    data = InteractionData.from_sequences([rng.permutation(n_items)[:4] for _ in range(12)], n_items)
    split = leave_one_out_split(data)
    model = fit_small(split.train, split.validation, epochs=2)  # metric_k is 10
    assert model.best_metric is not None and 0 < model.best_metric <= 1


def test_diverging_loss_raises_training_error(store_data):
    data, _, _ = store_data
    with pytest.raises(TrainingError, match="Lower the learning rate"):
        fit_small(data, lr=float("inf"), epochs=3)


def test_non_finite_weights_are_refused(store_data):
    data, _, _ = store_data
    data.weights[0] = np.nan
    with pytest.raises(TrainingError, match="weights"):
        fit_small(data, epochs=1)


def test_user_features_and_sampled_loss_path(store_data):
    data, stores, _ = store_data
    n = data.n_users
    data.user_features = rfm_user_features(
        last_seen=np.full(n, 1e9), frequency=data.lengths(), spend=None, now=1e9 + 86_400
    )
    model = fit_small(data, epochs=4, loss="sampled", n_negatives=20)
    assert model.net.user_feature_emb is not None
    seqs, stores = store_sequences(40, seed=11, length=(3, 5), switch=0.0)
    ids, _ = model.recommend(np.arange(40), [np.array(s) for s in seqs], k=3)
    assert (store_of(ids) == stores[:, None]).mean() > 0.6


def test_full_softmax_loss_matches_cross_entropy():
    g = torch.Generator().manual_seed(0)
    h = torch.randn(37, 8, generator=g, requires_grad=True)
    e = torch.randn(50, 8, generator=g, requires_grad=True)
    b = torch.randn(50, generator=g, requires_grad=True)
    t = torch.randint(0, 50, (37,), generator=g)
    w = torch.rand(37, generator=g)
    loss = full_softmax_loss(h, e, b, t, w, chunk=8)
    loss.backward()
    grads = [x.grad.clone() for x in (h, e, b)]
    for x in (h, e, b):
        x.grad = None
    ref = (F.cross_entropy(h @ e.T + b, t, reduction="none") * w).sum() / w.sum()
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-5)
    for got, x in zip(grads, (h, e, b), strict=True):
        torch.testing.assert_close(got, x.grad, rtol=1e-4, atol=1e-6)


def test_sampled_softmax_with_every_item_once_equals_full_softmax():
    g = torch.Generator().manual_seed(1)
    h, e, b = torch.randn(9, 4, generator=g), torch.randn(12, 4, generator=g), torch.randn(12)
    t = torch.randint(0, 12, (9,), generator=g)
    w = torch.ones(9)
    log_q = torch.full((12,), -np.log(12.0))
    sampled = sampled_softmax_loss(h, e, b, t, w, torch.arange(12), log_q)
    full = F.cross_entropy(h @ e.T + b, t)
    assert sampled.item() == pytest.approx(full.item(), rel=1e-5)


def test_device_resolution():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device().type == expected
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"


def test_artifacts_round_trip_without_pickle(trained, tmp_path, monkeypatch):
    model, _, featurizer = trained
    path = artifacts.save_model(
        tmp_path / "m", model, featurizer.to_dict(), metadata={"item_keys": ["a", "b"]}
    )
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((path / "config.json").read_text())
    assert config["metadata"] == {"item_keys": ["a", "b"]}

    def refuse(*args, **kwargs):
        raise AssertionError("loading must not unpickle")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)
    loaded = artifacts.load_model(path, device="cpu")
    histories = [np.array([0, 1, 2]), np.array([40, 41])]
    np.testing.assert_allclose(
        loaded.score_users(np.array([0, 1]), histories),
        model.score_users(np.array([0, 1]), histories),
        rtol=1e-5,
        atol=1e-5,
    )
    np.testing.assert_allclose(loaded.item_vectors(), model.item_vectors(), atol=1e-6)
    cold = featurizer.transform([store_item(1, 0, cold=True)])
    np.testing.assert_allclose(loaded.content_item_vectors(cold), model.content_item_vectors(cold), atol=1e-6)


def test_loading_refuses_foreign_files(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ValueError):
        artifacts.load_model(tmp_path)


def damage(tensors, config):
    """Ways a saved model's parts stop fitting together, each with what loading must say."""
    n_items = config["n_items"]
    dim = config["train_config"]["dim"]
    yield (
        {k: v for k, v in tensors.items() if k != "item_bias"},
        config,
        r"1 tensor\(s\) missing \(item_bias\)",
    )
    yield (
        {**tensors, "extra.weight": torch.zeros(2)},
        config,
        r"1 tensor\(s\) its config has no place for \(extra.weight\)",
    )
    yield (
        {**tensors, "item_id.weight": torch.zeros(n_items - 1, dim)},
        config,
        rf"tensor item_id.weight is \[{n_items - 1}, {dim}\], its config makes it \[{n_items}, {dim}\]",
    )
    yield {**tensors, "item_bias": torch.full((n_items,), float("nan"))}, config, "item_bias holds NaN"
    yield tensors, {**config, "n_items": "many"}, "its config's n_items is 'many', not a whole number >= 1"
    yield tensors, {**config, "n_items": n_items + 5}, "feature_ids .* are not one table of"
    no_features = {k: v for k, v in tensors.items() if k != "feature_ids"}
    yield no_features, config, r"1 tensor\(s\) missing \(feature_ids\)"
    yield (
        tensors,
        {**config, "train_config": {**config["train_config"], "dim": "x"}},
        "does not make a network",
    )


def test_a_model_whose_parts_do_not_fit_is_an_artifact_error_naming_it(trained):
    model, _, featurizer = trained
    tensors, config = artifacts.to_tensors(model, featurizer.to_dict())
    for bad_tensors, bad_config, reason in damage(tensors, config):
        with pytest.raises(artifacts.ArtifactError) as raised:
            artifacts.from_tensors(bad_tensors, bad_config, "cpu", source="Model 7")
        message = str(raised.value)
        assert message.startswith("Model 7 is damaged: ") and "\n" not in message
        assert message.endswith(". Retrain the model, or go back to an earlier one that loads.")
        assert re.search(reason, message), message
    artifacts.from_tensors(tensors, config, "cpu")  # the caller's tensors were left whole


def test_a_cut_short_weights_file_is_an_artifact_error_naming_it(trained, tmp_path):
    model, _, featurizer = trained
    path = artifacts.save_model(tmp_path / "m", model, featurizer.to_dict())
    weights = path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(
        artifacts.ArtifactError, match=f"^{weights} is damaged: it is not a whole safetensors"
    ):
        artifacts.load_model(path)


def test_time_budget_stops_training_mid_epoch(store_data):
    data, _, _ = store_data
    model = fit_small(data, epochs=10_000, max_seconds=0.5, lr_schedule="linear", batch_size=8)
    assert 1 <= len(model.history) < 10_000
    assert model.history[-1].elapsed < 0.5 + model.history[-1].seconds


def test_learning_rate_schedules():
    from recommendations.learning.two_tower import _lr_factor

    linear = TrainConfig(lr_schedule="linear")
    assert _lr_factor(linear, 0.0, 0) == 1.0 and _lr_factor(linear, 0.5, 10) == 0.5
    assert _lr_factor(TrainConfig(lr_schedule="cosine"), 0.5, 10) == pytest.approx(0.5)
    assert _lr_factor(TrainConfig(warmup_steps=10), 0.0, 4) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        _lr_factor(TrainConfig(lr_schedule="bogus"), 0.1, 1)
