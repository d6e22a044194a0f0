"""Keeping product vectors in step with the catalogue as products are saved.

In the style of haystack's signal processors: `RECOMMENDATIONS["SIGNAL_PROCESSOR"]` names a
class whose `setup()` connects handlers for the adapted product model only (never for every
model). The default, `OnCommitSignalProcessor`, queues the ids of saved or deleted products
once the transaction commits (a rolled-back save queues nothing), in one task per
transaction, and the `default` worker embeds them from their content features within
seconds. `None` turns on-save embedding off; the scheduled `sync_product_vectors` then
catches up.

If the broker is down the save still succeeds: the failure is logged and the next scheduled
sync gives the product its vector.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery import current_app
from django.db import models, transaction
from django.db.models.signals import post_delete, post_save

from recommendations import queues
from recommendations.adapters import get_product_adapter, get_product_model
from recommendations.conf import rec_settings
from recommendations.vectors.queries import active_version

EMBED_PRODUCTS_TASK = "recommendations.tasks.embed_products"

logger = logging.getLogger(__name__)


class BaseSignalProcessor:
    """Connects nothing; subclass and override `setup`/`teardown` and the handlers."""

    def __init__(self) -> None:
        self.model = get_product_model()

    def setup(self) -> None:
        """Connect signal handlers (called once from the app's `ready()`)."""

    def teardown(self) -> None:
        """Disconnect what `setup` connected (tests, reconfiguration)."""

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        """A product was saved or deleted."""


class OnCommitSignalProcessor(BaseSignalProcessor):
    """Queues `embed_products` with the changed ids when the transaction commits."""

    def __init__(self) -> None:
        super().__init__()
        self._pending = threading.local()

    def setup(self) -> None:
        uid = f"recommendations.indexing.{self.model._meta.label_lower}"
        post_save.connect(self.handle_change, sender=self.model, dispatch_uid=f"{uid}.save")
        post_delete.connect(self.handle_change, sender=self.model, dispatch_uid=f"{uid}.delete")

    def teardown(self) -> None:
        uid = f"recommendations.indexing.{self.model._meta.label_lower}"
        post_save.disconnect(sender=self.model, dispatch_uid=f"{uid}.save")
        post_delete.disconnect(sender=self.model, dispatch_uid=f"{uid}.delete")

    def handle_change(self, sender: type[models.Model], instance: models.Model, **kwargs: Any) -> None:
        if kwargs.get("raw"):  # loaddata: the fixture's products are embedded by the next sync
            return
        keys = getattr(self._pending, "keys", None)
        if keys is None:
            keys = self._pending.keys = set()
        keys.add(get_product_adapter().key(instance.pk))
        # Every change registers a flush; the first one after commit sends all ids, the
        # others find nothing left. In autocommit mode the flush runs at once.
        transaction.on_commit(self.flush)

    def flush(self) -> None:
        keys = getattr(self._pending, "keys", None)
        self._pending.keys = None
        if keys:
            enqueue_embedding(sorted(keys))


def enqueue_embedding(product_ids: list[str]) -> bool:
    """Queue `embed_products`; log (never raise) when the broker cannot be reached.

    Sent by name, so a web process never imports the training code (torch) to save a
    product. Skipped while no model is active: there is nothing to embed with yet.
    """
    if active_version() is None:
        return False
    try:
        current_app.send_task(EMBED_PRODUCTS_TASK, args=[product_ids], queue=queues.DEFAULT, retry=False)
    except Exception as exc:  # the broker is down or misconfigured: the save itself stands
        logger.error(
            "Could not queue embedding of %d product(s) %s: %s. The products are saved; the next "
            "scheduled sync_product_vectors gives them vectors. Check CELERY_BROKER_URL.",
            len(product_ids),
            ", ".join(product_ids[:10]),
            exc,
        )
        return False
    logger.debug("Queued embedding of product(s) %s", ", ".join(product_ids[:10]))
    return True


_processor: BaseSignalProcessor | None = None


def setup() -> BaseSignalProcessor | None:
    """Install the configured signal processor (idempotent); returns it."""
    global _processor
    if _processor is not None:
        _processor.teardown()
        _processor = None
    processor_class = rec_settings.SIGNAL_PROCESSOR  # imported, or ImproperlyConfigured naming it
    if processor_class is not None:
        _processor = processor_class()
        _processor.setup()
    return _processor
