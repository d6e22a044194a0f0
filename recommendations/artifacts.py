"""Stored models: one safetensors file per model version, through Django's storage API.

The learning core turns a model into tensors and a JSON config (`to_tensors`), which it can save
as a directory (`model.safetensors` + `config.json`, see `recommendations.learning.artifacts`).
A model version keeps both in ONE file, made in memory, so storage (local disk, S3, ...) holds
one object per version that is written or replaced at once: the core's tensors, with its config
(plus the item order and the feature-hashing settings) as `config.json` in the safetensors
header's metadata. Loading parses JSON and raw tensors only; nothing is
unpickled, so a tampered file cannot run code.
"""

from __future__ import annotations

import json
import logging
import os
import struct
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage
from safetensors import SafetensorError
from safetensors.torch import load as load_tensors
from safetensors.torch import save as save_tensors

from recommendations.devices import DeviceError
from recommendations.features import KeyIndex, TrainingData
from recommendations.learning import artifacts as core
from recommendations.learning.features import ItemFeaturizer
from recommendations.learning.two_tower import TwoTowerRecommender
from recommendations.models import ModelVersion

logger = logging.getLogger(__name__)

FORMAT = "recommendations.model_version/1"
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
    """The model and what embedding needs from its training data, as one safetensors file."""
    tensors, config = core.to_tensors(
        model, featurizer_config=data.featurizer.to_dict(), metadata={"item_keys": data.catalogue.items.keys}
    )
    text = json.dumps(config, indent=2, sort_keys=True)  # as the core's config.json
    return save_tensors(tensors, metadata={"format": FORMAT, core.CONFIG_FILE: text})


def loads(
    payload: bytes, device: str = "cpu", source: str = "The stored model"
) -> tuple[TwoTowerRecommender, KeyIndex, ItemFeaturizer]:
    """Rebuild the model from `dumps` output on `device`; `ValueError` for anything else
    (`core.ArtifactError` naming `source` when the file is a model's but does not make one)."""
    metadata = _header_metadata(payload)
    if metadata.get("format") != FORMAT or core.CONFIG_FILE not in metadata:
        raise ValueError(
            f"Not a stored two-tower model: format {metadata.get('format')!r}, expected {FORMAT!r}."
        )
    config = json.loads(metadata[core.CONFIG_FILE])
    model = core.from_tensors(load_tensors(payload), config, device, source)  # checks the config
    keys = (config.get("metadata") or {}).get("item_keys")
    if not isinstance(keys, list) or len(set(map(str, keys))) != model.n_items:
        raise core.ArtifactError(
            source, f"its product keys are not {model.n_items} distinct keys, one per item"
        )
    if not isinstance(config.get("featurizer"), dict):
        raise core.ArtifactError(source, "its feature-hashing settings are missing")
    return model, KeyIndex(keys), ItemFeaturizer.from_dict(config["featurizer"])


def _header_metadata(payload: bytes) -> dict[str, str]:
    """The `__metadata__` of a safetensors header (8-byte little-endian length, then JSON)."""
    if len(payload) < 8:
        raise ValueError("The stored model file is empty or truncated.")
    (length,) = struct.unpack("<Q", payload[:8])
    try:
        header = json.loads(payload[8 : 8 + length])
    except ValueError as exc:
        raise ValueError(f"The stored model file is not safetensors: {exc}") from exc
    return (header.get("__metadata__") or {}) if isinstance(header, dict) else {}


RETRAIN = "retrain: `python manage.py train_model --activate`"
ADVICE = (
    "Restore it, roll back to the version that served before (`python manage.py activate_model "
    f"--rollback`), or {RETRAIN}."
)


def save(version: ModelVersion, model: TwoTowerRecommender, data: TrainingData) -> None:
    """Store the model as the version's artifact (the caller saves the version row).

    A storage that cannot take it (a full disk, a MEDIA_ROOT that cannot be written) loses
    the training run: a `ValueError` that says where and what to check, not the OS's traceback.
    """
    name = f"two_tower_v{version.pk}.safetensors"
    try:
        version.artifact.save(name, ContentFile(dumps(model, data)), save=False)
    except OSError as exc:
        raise ValueError(
            f"The model file of version {version.pk} ({name}) could not be stored in {_where(version)}: "
            f"{exc}. Make room there or make it writable, then {RETRAIN}."
        ) from exc


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
    try:
        with version.artifact.open("rb") as fh:
            payload = fh.read()
    except OSError as exc:  # the file was moved or deleted, or the storage is unreachable
        raise ValueError(_unreadable(version, exc)) from exc
    source = f"The model file of version {version.pk} ({version.artifact.name})"
    try:
        model, items, featurizer = loads(payload, device, source)
    except DeviceError:
        raise
    except core.ArtifactError as exc:  # a model's file whose parts do not fit together
        raise core.ArtifactError(source, exc.reason, _advice(version)) from exc
    except (ValueError, TypeError, SafetensorError) as exc:  # empty, cut short, another file's bytes
        raise core.ArtifactError(source, str(exc).strip() or type(exc).__name__, _advice(version)) from exc
    loaded = LoadedModel(version.pk, model, items, featurizer)
    _loaded[key] = loaded
    while len(_loaded) > _CACHE_SIZE:
        _loaded.popitem(last=False)
    logger.info("Loaded model version %s (%d items) on %s", version.pk, len(items), device)
    return loaded


def _advice(version: ModelVersion) -> str:
    """What to do about `version`'s unreadable model file. Rolling back helps only when the
    version it goes back to has a file of its own: `embed` makes its new version share the
    file of the version it copies, which is then the one that served before."""
    target = ModelVersion.objects.previous()
    if target is None or target.pk == version.pk or target.artifact.name != version.artifact.name:
        return ADVICE
    return (
        f"Restore it, or {RETRAIN}. Rolling back does not help: version {target.pk}, which served "
        "before, shares this file (`embed` made one version from the other)."
    )


def _unreadable(version: ModelVersion, exc: OSError) -> str:
    """Which file of which version could not be read, from where, and what to do about it."""
    problem = "is missing from" if isinstance(exc, FileNotFoundError) else f"could not be read ({exc}) from"
    file = f"The model file of version {version.pk} ({version.artifact.name})"
    return f"{file} {problem} {_where(version)}. {_advice(version)}"


def _where(version: ModelVersion) -> str:
    """The storage of model files, as the operator configures it."""
    storage = version.artifact.storage
    location = getattr(storage, "location", None)
    if isinstance(storage, FileSystemStorage) and location == os.path.abspath(settings.MEDIA_ROOT):
        return f"MEDIA_ROOT ({location})"
    return f"the {type(storage).__name__} storage" + (f" ({location})" if location else "")
