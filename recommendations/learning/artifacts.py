"""Save and load trained two-tower models without pickle.

A model directory holds `model.safetensors` (every tensor, including the item feature ids the
item tower was trained with) and `config.json` (hyper-parameters, sizes, the featurizer's
settings and free-form metadata). Loading parses JSON and raw tensors only, so a tampered
artifact cannot execute code, unlike `torch.load` of a pickle.
"""

from __future__ import annotations

import json
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


def save_model(
    path: str | Path,
    model: TwoTowerRecommender,
    featurizer_config: dict | None = None,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Write `model` to the directory `path` (created if missing) and return it.

    `featurizer_config` (`ItemFeaturizer.to_dict()`) lets serving hash new items exactly as
    in training; `metadata` (JSON-serialisable) is stored as is, e.g. id mappings or metrics.
    Under data-parallel training only rank 0 writes (every rank holds the same weights), so a
    script that torchrun runs on every rank does not race on one file.
    """
    net = model._require_net()
    path = Path(path)
    if not is_main_process():
        return path
    path.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    if model.user_features is not None:
        tensors["user_features.ids"] = torch.as_tensor(model.user_features.ids)
        tensors["user_features.weights"] = torch.as_tensor(model.user_features.weights)
    save_file(tensors, str(path / WEIGHTS_FILE), metadata={"format": FORMAT})
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
    (path / CONFIG_FILE).write_text(json.dumps(config, indent=2, sort_keys=True))
    return path


def load_config(path: str | Path) -> dict[str, Any]:
    """The JSON side of a saved model (featurizer settings, metadata, sizes)."""
    config = json.loads((Path(path) / CONFIG_FILE).read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path} is not a saved two-tower model")
    if config.get("format_version", 0) > FORMAT_VERSION:
        raise ValueError(f"{path} was saved by a newer version (format {config['format_version']})")
    return config


def load_model(path: str | Path, device: str | None = None) -> TwoTowerRecommender:
    """Rebuild a `TwoTowerRecommender` ready for scoring, on `device` (default: auto)."""
    config = load_config(path)
    tensors = load_file(str(Path(path) / WEIGHTS_FILE))
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
