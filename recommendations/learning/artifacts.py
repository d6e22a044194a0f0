"""Save and load trained two-tower models without pickle.

A model is its tensors (every weight, including the item feature ids the item tower was
trained with) and a JSON config (hyper-parameters, sizes, the featurizer's settings and
free-form metadata): `to_tensors` and `from_tensors` convert, in memory. A model directory holds
them as `model.safetensors` and `config.json` (`save_model`, `load_model`); the app keeps both in
one file per model version (`recommendations.artifacts`). Loading parses JSON and raw tensors
only, so a tampered artifact cannot execute code, unlike `torch.load` of a pickle.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from .distributed import is_main_process
from .features import ItemFeatures, UserFeatures
from .two_tower import TrainConfig, TwoTowerNet, TwoTowerRecommender, resolve_device

FORMAT = "recommendations.two_tower"
FORMAT_VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"


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
    tensors: Mapping[str, torch.Tensor], config: Any, device: str | None = None
) -> TwoTowerRecommender:
    """Rebuild a `TwoTowerRecommender` ready for scoring from `to_tensors` output, on `device`
    (default: auto); `ValueError` for a config that is not a two-tower model's."""
    config = check_config(config, "the model's config")
    tensors = dict(tensors)  # the user features are taken out; the caller's mapping stays whole
    train_config = TrainConfig.from_dict(config["train_config"])
    train_config.device = device
    item_features = None
    if config["n_item_features"]:
        ids, weights = tensors["feature_ids"].numpy(), tensors["feature_weights"].numpy()
        item_features = ItemFeatures(ids, weights, config["n_item_features"])
    user_features = None
    if "user_features.ids" in tensors:
        user_features = UserFeatures(
            tensors.pop("user_features.ids").numpy(),
            tensors.pop("user_features.weights").numpy().astype(np.float32),
            config["n_user_features"],
        )
    net = TwoTowerNet(config["n_items"], train_config, item_features, config["n_user_features"])
    net.load_state_dict(tensors, strict=True)
    model = TwoTowerRecommender(train_config)
    model.device = resolve_device(device)
    model.net = net.to(model.device).eval()
    model.n_items = config["n_items"]
    model.user_features = user_features
    model.best_epoch = config.get("best_epoch", 0)
    model.best_metric = config.get("best_metric")
    return model


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
    """Rebuild a `TwoTowerRecommender` ready for scoring, on `device` (default: auto)."""
    config = load_config(path)
    return from_tensors(load_file(str(Path(path) / WEIGHTS_FILE)), config, device)
