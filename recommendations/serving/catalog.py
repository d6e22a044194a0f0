"""Keeps the engine's search index (`ProductDocument`) in step with the host's catalogue.

Everything is read through the product adapter (`to_record`), so any host model works.
`index_products()` upserts the given products (or all) and deletes documents of products
that no longer exist. `SearchIndexProcessor` (connected in the app's `ready()`) calls it for
each saved or deleted product once the transaction commits; `refresh_serving` rebuilds it all.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from typing import Any

from django.db import models, transaction
from django.db.models.signals import post_delete, post_save
from django.utils import timezone
from tqdm import tqdm

from recommendations.adapters import ProductRecord, get_product_adapter
from recommendations.indexing import BaseSignalProcessor
from recommendations.models import ProductDocument

logger = logging.getLogger(__name__)
BATCH_SIZE = 2000
UPDATE_FIELDS = ["title", "text", "brand", "categories", "store_id", "price", "created_at", "updated_at"]


def _document(record: ProductRecord) -> ProductDocument:
    return ProductDocument(
        product_id=record.id,
        title=record.title[:500],
        text=record.text,
        brand=record.brand[:200],
        categories=[c[:200] for c in record.category_path],
        store_id=record.store_id or "",
        price=record.price,
        created_at=record.created_at,
    )


def index_products(keys: Iterable[str] | None = None) -> int:
    """Write search documents for these products (all when None); returns how many.

    Products among `keys` that the host no longer has (or no longer indexes) lose their
    document. Each batch is one transaction, so a failure leaves earlier batches in place
    and no batch half-written.
    """
    started = time.monotonic()
    since = timezone.now()
    adapter = get_product_adapter()
    queryset = adapter.index_queryset()
    wanted = None if keys is None else {str(k) for k in keys}
    if wanted is not None:
        queryset = queryset.filter(pk__in=list(wanted))
    total = queryset.count()
    seen: set[str] = set()
    batch: list[ProductDocument] = []
    for record in tqdm(
        adapter.records(queryset), total=total, desc="search index", disable=None, leave=False
    ):
        batch.append(_document(record))
        seen.add(record.id)
        if len(batch) >= BATCH_SIZE:
            _write(batch)
            batch = []
    _write(batch)
    if wanted is None:  # every document written now has a newer `updated_at`
        stale = ProductDocument.objects.filter(updated_at__lt=since)
    else:
        stale = ProductDocument.objects.filter(product_id__in=wanted - seen)
    removed, _ = stale.delete()
    logger.info(
        "Indexed %d products for search (%d removed) in %.1f s",
        len(seen),
        removed,
        time.monotonic() - started,
    )
    return len(seen)


def _write(batch: list[ProductDocument]) -> None:
    if not batch:
        return
    with transaction.atomic():
        ProductDocument.objects.bulk_create(
            batch, update_conflicts=True, unique_fields=["product_id"], update_fields=UPDATE_FIELDS
        )


class SearchIndexProcessor(BaseSignalProcessor):
    """Rewrites the search documents of saved or deleted products when their transaction commits.

    The same approach as the pipeline's `indexing.OnCommitSignalProcessor` (which queues their
    embedding): handlers for the adapted product model only, the ids of one transaction
    gathered and indexed together after commit, so a rolled-back save changes nothing. A
    product is a few small statements, so this runs in the saving process, with no broker.
    A failure is logged and never fails the save: the next save or `refresh_serving` fixes it.
    """

    dispatch_uid = "recommendations.serving.catalog.search_index"

    def __init__(self) -> None:
        super().__init__()
        self._pending = threading.local()

    def setup(self) -> None:
        post_save.connect(self.handle_change, sender=self.model, dispatch_uid=f"{self.dispatch_uid}.save")
        post_delete.connect(self.handle_change, sender=self.model, dispatch_uid=f"{self.dispatch_uid}.delete")

    def teardown(self) -> None:
        post_save.disconnect(sender=self.model, dispatch_uid=f"{self.dispatch_uid}.save")
        post_delete.disconnect(sender=self.model, dispatch_uid=f"{self.dispatch_uid}.delete")

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        if kwargs.get("raw"):  # loaddata: `refresh_serving` indexes fixtures
            return
        if getattr(self._pending, "keys", None) is None:
            self._pending.keys = set()
        self._pending.keys.add(get_product_adapter().key(instance.pk))
        # Registered on every change: a rolled-back transaction drops its callbacks, and the first
        # flush after a commit takes every id gathered so far (at once in autocommit mode).
        transaction.on_commit(self.flush)

    def flush(self) -> None:
        keys, self._pending.keys = getattr(self._pending, "keys", None), None
        if not keys:
            return
        try:
            with transaction.atomic():  # all or nothing, and a failure cannot break a caller's transaction
                index_products(sorted(keys))
        except Exception:  # the product is saved either way; its document catches up later
            logger.exception(
                "Could not update the search documents of product(s) %s; the products are saved. "
                "Run `python manage.py refresh_serving` once the cause is fixed.",
                ", ".join(sorted(keys)[:10]),
            )


_search_index: SearchIndexProcessor | None = None


def connect_search_index() -> SearchIndexProcessor:
    """Install the on-save search indexing (idempotent; called from the app's `ready()`)."""
    global _search_index
    if _search_index is not None:
        _search_index.teardown()
    _search_index = SearchIndexProcessor()
    _search_index.setup()
    return _search_index
