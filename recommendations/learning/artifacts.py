"""Save and load trained two-tower models without pickle.

A model is its tensors (every weight, including the item feature ids the item tower was
trained with) and a JSON config (hyper-parameters, sizes, the featurizer's settings and
free-form metadata): `to_tensors` and `from_tensors` convert, in memory. A model directory holds
them as `model.safetensors` and `config.json` (`save_model`, `load_model`); the app keeps both in
one file per model version (`recommendations.artifacts`). Loading parses JSON and raw tensors
only, so a tampered artifact cannot execute code, unlike `torch.load` of a pickle; and it checks
every size and tensor against the network the config describes, so a damaged artifact is an
`ArtifactError` that names it, not a KeyError or a shape error from torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .distributed import is_main_process
from .features import ItemFeatures, UserFeatures
from .two_tower import TrainConfig, TwoTowerNet, TwoTowerRecommender, resolve_device

FORMAT = "recommendations.two_tower"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
ADVICE = "Retrain the model, or go back to an earlier one that loads."


class ArtifactError(ValueError):
    """A saved model that cannot be rebuilt (cut short, tensors missing or of the wrong shape, a
    config that does not match them): says which and what to do. A `ValueError`, as callers
    report a bad file."""

    def __init__(self, source: str, reason: str, advice: str = ADVICE) -> None:
        super().__init__(source, reason, advice)  # all in args: it pickles, e.g. out of a task

    @property
    def reason(self) -> str:
        return self.args[1]

    def __str__(self) -> str:
        source, reason, advice = self.args
        return f"{source} is damaged: {reason.rstrip('.')}. {advice}"  # a reason may end its sentence


def to_tensors(
    model: TwoTowerRecommender,
    featurizer_config: dict | None = None,
    metadata: dict[str, Any] | None = None,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """`model` as (tensors on the CPU, for safetensors; its JSON-serialisable config).

    `featurizer_config` (`ItemFeaturizer.to_dict()`) lets serving hash new items exactly as
    in training; `metadata` (JSON-serialisable) is stored as is, e.g. id mappings or metrics.
    """
    net = model._require_net()
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if model.user_features is not None:
        tensors["user_features.ids"] = torch.as_tensor(model.user_features.ids)
        tensors["user_features.weights"] = torch.as_tensor(model.user_features.weights)
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "train_config": model.config.to_dict(),
        "n_items": model.n_items,
        "n_item_features": net.n_hashed_features if net.has_features else 0,
        "n_user_features": int(net.user_feature_emb.num_embeddings)
        if net.user_feature_emb is not None
        else 0,
        "best_epoch": model.best_epoch,
        "best_metric": model.best_metric,
        "featurizer": featurizer_config,
        "metadata": metadata or {},
    }
    return tensors, config


def from_tensors(
    tensors: Mapping[str, torch.Tensor],
    config: Any,
    device: str | None = None,
    source: str = "The saved model",
) -> TwoTowerRecommender:
    """Rebuild a `TwoTowerRecommender` ready for scoring from `to_tensors` output, on `device`
    (default: auto). `ValueError` for a config that is not a two-tower model's; `ArtifactError`
    naming `source` (a file, a model version) when the config and tensors do not make a model."""
    config = check_config(config, source)
    tensors = dict(tensors)  # the user features are taken out; the caller's mapping stays whole
    try:
        net, user_features, train_config = _network(tensors, config)
    except ValueError as exc:
        raise ArtifactError(source, str(exc)) from exc
    problem = _mismatch(tensors, net.state_dict())
    if problem:
        raise ArtifactError(source, problem)
    net.load_state_dict(tensors, strict=True)
    train_config.device = device
    model = TwoTowerRecommender(train_config)
    model.device = resolve_device(device)
    model.net = net.to(model.device).eval()
    model.n_items = config["n_items"]
    model.user_features = user_features
    model.best_epoch = config.get("best_epoch", 0)
    model.best_metric = config.get("best_metric")
    return model


def _network(
    tensors: dict[str, torch.Tensor], config: dict[str, Any]
) -> tuple[TwoTowerNet, UserFeatures | None, TrainConfig]:
    """The untrained network the config describes, with the feature tables it reads from
    `tensors` (the user features are taken out); `ValueError` saying what does not fit."""
    n_items, n_item_features, n_user_features = (
        _count(config, "n_items", 1),
        _count(config, "n_item_features", 0),
        _count(config, "n_user_features", 0),
    )
    if not isinstance(config.get("train_config"), dict):
        raise ValueError("its config has no train_config")
    train_config = TrainConfig.from_dict(config["train_config"])
    item_features = None
    if n_item_features:
        ids, weights = _table(tensors, "feature_ids", "feature_weights", n_items)
        item_features = ItemFeatures(ids, weights, n_item_features)
    user_features = None
    if "user_features.ids" in tensors or "user_features.weights" in tensors:
        ids, weights = _table(tensors, "user_features.ids", "user_features.weights")
        if ids.size and not 0 <= ids.min() <= ids.max() < n_user_features:
            raise ValueError(f"user feature ids outside 0..{n_user_features - 1}")
        user_features = UserFeatures(ids, weights.astype(np.float32), n_user_features)
        del tensors["user_features.ids"], tensors["user_features.weights"]
    try:
        net = TwoTowerNet(n_items, train_config, item_features, n_user_features)
    except (TypeError, ValueError, RuntimeError) as exc:  # an option of the wrong type or range
        cause = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise ValueError(f"its train_config does not make a network ({cause})") from exc
    return net, user_features, train_config


def _count(config: dict[str, Any], key: str, low: int) -> int:
    value = config.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"its config's {key} is {value!r}, not a whole number >= {low}")
    return value


def _table(
    tensors: dict[str, torch.Tensor], ids_name: str, weights_name: str, rows: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """A padded feature table (ids and weights of one shape, `rows` rows when given)."""
    missing = [name for name in (ids_name, weights_name) if name not in tensors]
    if missing:
        raise ValueError(f"{len(missing)} tensor(s) missing ({', '.join(missing)})")
    ids, weights = tensors[ids_name].numpy(), tensors[weights_name].numpy()
    if ids.ndim != 2 or ids.shape != weights.shape or (rows is not None and len(ids) != rows):
        raise ValueError(
            f"{ids_name} {list(ids.shape)} and {weights_name} {list(weights.shape)} are not one table"
            + (f" of {rows} rows" if rows is not None else "")
        )
    return ids, weights


def _mismatch(tensors: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor]) -> str:
    """What keeps `tensors` from being the network's weights, in words; empty when nothing does."""
    missing = sorted(set(expected) - set(tensors))
    if missing:
        return f"{len(missing)} tensor(s) missing ({_names(missing)})"
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        return f"{len(unexpected)} tensor(s) its config has no place for ({_names(unexpected)})"
    for name, want in expected.items():
        got = tensors[name]
        if got.shape != want.shape:
            return f"tensor {name} is {list(got.shape)}, its config makes it {list(want.shape)}"
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            return f"tensor {name} holds NaN or infinite values"
    return ""


def _names(names: list[str], shown: int = 3) -> str:
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more


def check_config(config: Any, source: object) -> dict[str, Any]:
    """`config` if it is a two-tower model's in a format this version reads; else `ValueError`
    naming `source` (a path, a file)."""
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise ValueError(f"{source} is not a saved two-tower model")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{source} was saved by a newer version (format {config['format_version']})")
    return config


def save_model(
    path: str | Path,
    model: TwoTowerRecommender,
    featurizer_config: dict | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to the directory `path` (created if missing) and return it (arguments as
    `to_tensors`'s).

    Under data-parallel training only rank 0 writes (every rank holds the same weights), so a
    script that torchrun runs on every rank does not race on one file.
    """
    model._require_net()
    path = Path(path)
    if not is_main_process():
        return path
    path.mkdir(parents=True, exist_ok=True)
    tensors, config = to_tensors(model, featurizer_config, metadata)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": FORMAT})
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return path


def load_config(path: str | Path) -> dict[str, Any]:
    """The JSON side of a saved model (featurizer settings, metadata, sizes)."""
    return check_config(json.loads((Path(path) / CONFIG_FILE).read_text()), path)


def load_model(path: str | Path, device: str | None = None) -> TwoTowerRecommender:
    """Rebuild a `TwoTowerRecommender` ready for scoring, on `device` (default: auto);
    `ArtifactError` naming the weights file when it is damaged."""
    config = load_config(path)
    weights = Path(path) / WEIGHTS_FILE
    try:
        tensors = load_file(str(weights))
    except SafetensorError as exc:  # empty, cut short, or another file's bytes
        raise ArtifactError(str(weights), f"it is not a whole safetensors file ({exc})") from exc
    return from_tensors(tensors, config, device, source=str(weights))
