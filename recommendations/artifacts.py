"""Stored models: one safetensors file per model version, through Django's storage API.

The file holds the two-tower network's tensors; its header's metadata holds JSON only: the
training configuration, table sizes, the item order (item index -> product key) and the
feature-hashing settings, so that a product created after training is hashed exactly as in
training. Loading never unpickles anything, so a tampered file cannot run code.
"""

from __future__ import annotations

import json
import logging
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.core.files.base import ContentFile
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from recommendations.features import KeyIndex, TrainingData
from recommendations.learning.features import ItemFeatures, ItemFeaturizer
from recommendations.learning.two_tower import TrainConfig, TwoTowerNet, TwoTowerRecommender
from recommendations.models import ModelVersion

logger = logging.getLogger(__name__)

FORMAT = "recommendations.two_tower/1"
_CACHE_SIZE = 2  # the active version and the one being activated


@dataclass
class LoadedModel:
    """A version's model, ready to embed: the network plus the maps stored beside it."""

    version_id: int
    model: TwoTowerRecommender
    items: KeyIndex
    featurizer: ItemFeaturizer
    _trained_items: np.ndarray | None = None

    @property
    def trained_item_vectors(self) -> np.ndarray:
        """[n_items, d + 1] vectors (bias last) of the items seen in training, computed once."""
        if self._trained_items is None:
            self._trained_items = self.model.item_vectors()
        return self._trained_items


def dumps(model: TwoTowerRecommender, data: TrainingData) -> bytes:
    """The model and what embedding needs from its training data, as safetensors bytes."""
    net = model.net
    if net is None:
        raise ValueError("Only a trained model can be stored.")
    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in net.state_dict().items()}
    metadata = {
        "format": FORMAT,
        "config": json.dumps(model.config.to_dict()),
        "n_items": str(model.n_items),
        "n_features": str(net.feature_emb.num_embeddings if net.has_features else 0),
        "n_user_features": str(
            net.user_feature_emb.num_embeddings if net.user_feature_emb is not None else 0
        ),
        "item_keys": json.dumps(data.catalogue.items.keys),
        "featurizer": json.dumps(data.featurizer.to_dict()),
    }
    return save_tensors(tensors, metadata=metadata)


def loads(payload: bytes, device: str = "cpu") -> tuple[TwoTowerRecommender, KeyIndex, ItemFeaturizer]:
    """Rebuild the model from `dumps` output on `device`."""
    metadata = _header_metadata(payload)
    if metadata.get("format") != FORMAT:
        raise ValueError(
            f"Not a stored two-tower model (format {metadata.get('format')!r}, expected {FORMAT!r})."
        )
    tensors = load_tensors(payload)
    config = TrainConfig.from_dict({**json.loads(metadata["config"]), "device": device})
    n_items, n_features = int(metadata["n_items"]), int(metadata["n_features"])
    features = None
    if n_features:
        features = ItemFeatures(
            tensors["feature_ids"].numpy(), tensors["feature_weights"].numpy(), n_features
        )
    net = TwoTowerNet(n_items, config, features, int(metadata["n_user_features"]))
    net.load_state_dict(tensors)
    model = TwoTowerRecommender(config)
    model.net = net.to(model.device).eval()
    model.n_items = n_items
    items = KeyIndex(json.loads(metadata["item_keys"]))
    return model, items, ItemFeaturizer.from_dict(json.loads(metadata["featurizer"]))


def _header_metadata(payload: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(payload) < 8:
        raise ValueError("The stored model file is empty or truncated.")
    (length,) = struct.unpack("<Q", payload[:8])
    try:
        header = json.loads(payload[8 : 8 + length])
    except ValueError as exc:
        raise ValueError(f"The stored model file is not safetensors: {exc}") from exc
    return header.get("__metadata__", {})


def save(version: ModelVersion, model: TwoTowerRecommender, data: TrainingData) -> None:
    """Store the model as the version's artifact (the caller saves the version row)."""
    version.artifact.save(f"two_tower_v{version.pk}.safetensors", ContentFile(dumps(model, data)), save=False)


_loaded: OrderedDict[tuple[int, str], LoadedModel] = OrderedDict()


def load(version: ModelVersion, device: str = "cpu") -> LoadedModel:
    """The version's model from storage, cached for the last two versions used."""
    key = (version.pk, version.artifact.name)
    if key in _loaded:
        _loaded.move_to_end(key)
        return _loaded[key]
    if not version.artifact:
        raise ValueError(
            f"Model version {version.pk} has no stored model ({version.status}); train it first."
        )
    with version.artifact.open("rb") as fh:
        model, items, featurizer = loads(fh.read(), device)
    loaded = LoadedModel(version.pk, model, items, featurizer)
    _loaded[key] = loaded
    while len(_loaded) > _CACHE_SIZE:
        _loaded.popitem(last=False)
    logger.info("Loaded model version %s (%d items) on %s", version.pk, len(items), device)
    return loaded
