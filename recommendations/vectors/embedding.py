"""From a trained model to stored vectors: whole catalogues, and single products on save.

A version's artifact holds the model weights plus the training-time item order and feature
hashing settings. Products are embedded from their current content (title, category, brand,
store, price, age) plus their learned id embedding when the model saw them in training, so
a product created after training still gets a useful vector from its content alone. Store
vectors are the mean of their active products' vectors; user vectors come from the user
tower over each shopper's recent history.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from recommendations import artifacts
from recommendations.adapters import ProductRecord, get_product_adapter
from recommendations.artifacts import LoadedModel
from recommendations.devices import configured_device
from recommendations.features import TrainingData, build_training_data, item_content
from recommendations.models import ListKind, ModelVersion, ProductVector
from recommendations.progress import Progress
from recommendations.sql import existing_keys, read_as_of
from recommendations.vectors import lists, queries, writer

logger = logging.getLogger(__name__)

EMBED_BATCH = 20_000


def load_model(version: ModelVersion) -> LoadedModel:
    """The version's model on this worker's device (cached)."""
    return artifacts.load(version, configured_device())


def product_embeddings(
    loaded: LoadedModel, records: Sequence[ProductRecord]
) -> tuple[np.ndarray, np.ndarray]:
    """Vectors and biases of products.

    Products seen in training get their learned vector (id + content at training time);
    products created since get one from their current content alone.
    """
    indices = np.array(loaded.items.indices([r.id for r in records]), dtype=np.int64)
    vectors = np.empty((len(records), loaded.trained_item_vectors.shape[1]), dtype=np.float32)
    known = indices >= 0
    vectors[known] = loaded.trained_item_vectors[indices[known]]
    if not known.all():
        new = [item_content(r) for r, seen in zip(records, known, strict=True) if not seen]
        features = loaded.featurizer.transform(new, now=timezone.now().timestamp())
        vectors[~known] = loaded.model.content_item_vectors(features)
    # The learning core folds the bias into the last column (score = <user, item>); the
    # database keeps it in its own column so that cosine similarity ignores it.
    return vectors[:, :-1], vectors[:, -1]


@dataclass
class EmbedCounts:
    products: int = 0
    stores: int = 0
    users: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def embed_version(version: ModelVersion, progress: Progress | None = None) -> EmbedCounts:
    """Compute and write every product, store and user vector of `version` from the current
    catalogue and events. Idempotent: each table's rows of the version are replaced.

    The vectors are stamped with the time the catalogue was read, or the start of the oldest
    write transaction still open then (`sql.read_as_of`), so a product saved while the embed
    ran, even in a transaction the read could not see yet, is found stale by the next
    `sync_all_products`."""
    progress = progress or Progress()
    progress.bind(version)
    started = time.perf_counter()
    loaded = load_model(version)
    read_at = read_as_of()
    data = build_training_data(version.config.get("window_days"))
    products = [p for p in data.catalogue.products if p.is_active]
    parts = []
    for start in range(0, len(products), EMBED_BATCH):
        progress("embedding products", start, len(products))
        parts.append(product_embeddings(loaded, products[start : start + EMBED_BATCH]))
    embeddings = np.concatenate([p[0] for p in parts])
    biases = np.concatenate([p[1] for p in parts])
    progress("writing vectors", 0, 3)
    # Unfinished from the first write until the last: a kill in between leaves a version that
    # activation refuses (`embedded_at`), not one that serves without user vectors.
    _mark_embedded(version, None, read_at)
    counts = EmbedCounts()
    counts.products = writer.write_product_vectors(
        version, [p.id for p in products], embeddings, biases, as_of=read_at
    )
    store_ids, store_vectors = _store_vectors(products, embeddings)
    counts.stores = writer.write_store_vectors(version, store_ids, store_vectors, as_of=read_at)
    progress("writing vectors", 2, 3)
    user_ids, user_vectors = _user_vectors(loaded, data)
    counts.users = writer.write_user_vectors(version, user_ids, user_vectors, as_of=read_at)
    # Lists ranked from vectors written before (a retried task) would not match these.
    lists.forget(version)
    _mark_embedded(version, timezone.now())
    progress("writing vectors", 3, 3)
    counts.seconds = time.perf_counter() - started
    logger.info(
        "Embedded model version %s: %d products, %d stores, %d users in %.1fs",
        version.pk,
        counts.products,
        counts.stores,
        counts.users,
        counts.seconds,
    )
    return counts


def _mark_embedded(
    version: ModelVersion, when: dt.datetime | None, read_at: dt.datetime | None = None
) -> None:
    """Record when the version's embed finished (None: it is under way or was interrupted)
    and, as it starts writing, the stamp of its catalogue read (`vectors_read_at`)."""
    version.embedded_at = when
    fields: dict[str, Any] = {"embedded_at": when}
    if read_at is not None:
        version.vectors_read_at = fields["vectors_read_at"] = read_at
    ModelVersion.objects.filter(pk=version.pk).update(**fields)


def _store_vectors(products: Sequence[ProductRecord], embeddings: np.ndarray) -> tuple[list[str], np.ndarray]:
    """A store's vector is the mean of its active products' vectors: user . store is then the
    user's mean affinity to what the store sells."""
    stores = np.array([p.store_id or "" for p in products], dtype=object)
    ids = sorted({s for s in stores if s})
    if not ids:
        return [], np.zeros((0, embeddings.shape[1]), np.float32)
    vectors = np.stack([embeddings[stores == store_id].mean(axis=0) for store_id in ids])
    return ids, vectors


def _user_vectors(loaded: LoadedModel, data: TrainingData) -> tuple[list[int], np.ndarray]:
    """User-tower vectors of signed-in shoppers from their histories (anonymous sessions get
    theirs in real time from serving).

    Only of users who still exist: events have no foreign key to their user, so events of a
    deleted user may remain, and the user vectors' foreign key would fail the whole embed.
    """
    existing = existing_keys(get_user_model(), (pk for pk in data.user_ids if pk is not None))
    users = np.flatnonzero([pk is not None and str(pk) in existing for pk in data.user_ids])
    if not len(users):
        return [], np.zeros((0, loaded.model.config.dim), np.float32)
    # Item indices of the current catalogue -> the model's (-1: created after training).
    to_model = np.array(loaded.items.indices(data.catalogue.items.keys), dtype=np.int64)
    histories = []
    for u in users:
        mapped = to_model[data.interactions.sequence(u)]
        histories.append(mapped[mapped >= 0])
    # Features of all events: at serving time every event is known.
    user_features = data.interactions.user_features
    if user_features is not None:
        user_features = user_features.rows(users)
    # The core appends a constant 1 (matching the folded item bias); the database does not.
    vectors = np.asarray(loaded.model.user_vectors(histories, user_features), np.float32)[:, :-1]
    return [data.user_ids[u] for u in users], vectors


# --- keeping the active version in step with the catalogue ------------------------------
@dataclass
class SyncResult:
    written: int = 0
    removed: int = 0
    skipped: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def sync_products(product_ids: Iterable[str], version: ModelVersion | None = None) -> SyncResult:
    """Embed these products into the active version from their content, or remove their
    vectors if they are gone or inactive. Used on product save and by the scheduled sync."""
    keys = sorted({str(k) for k in product_ids})
    version = version or queries.active_version(fresh=True)
    if version is None:
        return SyncResult(skipped="no model version is active")
    if not keys:
        return SyncResult()
    adapter = get_product_adapter()
    read_at = read_as_of()
    records = [r for r in adapter.records(adapter.index_queryset().filter(pk__in=keys)) if r.is_active]
    result = SyncResult()
    with transaction.atomic():
        if records:
            embeddings, biases = product_embeddings(load_model(version), records)
            result.written = writer.write_product_vectors(
                version, [r.id for r in records], embeddings, biases, replace_all=False, as_of=read_at
            )
        gone = set(keys) - {r.id for r in records}
        if gone:
            stale = ProductVector.objects.filter(model_version_id=version.pk, product_id__in=gone)
            result.removed = stale.delete()[0]
        # Its neighbours changed: the product is served from the index until the next build.
        lists.drop(version, ListKind.SIMILAR, keys)
    logger.info(
        "Synced product vectors of model version %s: %d written, %d removed",
        version.pk,
        result.written,
        result.removed,
    )
    return result


def sync_all_products(version: ModelVersion | None = None, progress: Progress | None = None) -> SyncResult:
    """Embed active products that have no vector or were saved since theirs was computed,
    and remove the vectors of products that are gone or inactive: picks up saves whose
    task could not be queued (the broker was down) and those made while the version was
    trained and embedded. Saved products are found by the adapter's `updated_field` (a
    DateTimeField); without one, only missing vectors are. `progress` hears of each batch embedded."""
    progress = progress or Progress()
    version = version or queries.active_version(fresh=True)
    if version is None:
        return SyncResult(skipped="no model version is active")
    adapter = get_product_adapter()
    active = adapter.index_queryset()
    if adapter.active_field:
        active = active.filter(Q(**{adapter.active_field: True}))
    wanted = {adapter.key(pk) for pk in active.values_list("pk", flat=True)}
    have = set(ProductVector.objects.filter(model_version_id=version.pk).values_list("product_id", flat=True))
    changed = sorted((wanted - have) | (have - wanted) | _saved_since_embedded(active, version))
    result = SyncResult()
    for start in range(0, len(changed), EMBED_BATCH):
        progress("embedding products", start, len(changed))
        part = sync_products(changed[start : start + EMBED_BATCH], version)
        result.written += part.written
        result.removed += part.removed
    progress("embedding products", len(changed), len(changed))
    return result


def _saved_since_embedded(products: QuerySet, version: ModelVersion) -> set[str]:
    """Keys of these products whose `updated_field` is later than their vector's `updated_at`
    (when their content was read for it, `sql.read_as_of`). Only products saved since the
    version was made or its embed read the catalogue, whichever was earlier, are read, and
    only their vectors' times: the few saved since, not the catalogue, and no read of all the
    version's vectors. A save a later sync's read missed is later than that bound too: its
    transaction either was writing at the embed's read (whose stamp is then no later than its
    start) or wrote after it."""
    adapter = get_product_adapter()
    updated = adapter.updated_time_field()
    if updated is None:
        return set()
    since = min(version.created_at, version.vectors_read_at or version.created_at)
    saved = products.filter(**{f"{updated}__gt": since}).values_list("pk", updated)
    saved_at = {adapter.key(pk): at for pk, at in saved}
    if not saved_at:
        return set()
    stamps = ProductVector.objects.filter(
        model_version_id=version.pk, product_id__in=list(saved_at)
    ).values_list("product_id", "updated_at")
    return {key for key, embedded_at in stamps if saved_at[key] > embedded_at}
