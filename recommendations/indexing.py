"""Keeping product vectors in step with the catalogue as products are saved.

`RECOMMENDATIONS["SIGNAL_PROCESSOR"]` names a class whose `setup()` connects handlers for the
adapted product model only (see `recommendations.signal_processors`). The default,
`OnCommitSignalProcessor`, queues the ids of saved or deleted products once the transaction
commits (a rolled-back save queues nothing), in one task per transaction, and the `default`
worker embeds them from their content features within seconds. It also answers
`activation.version_activated` by queuing `sync_product_vectors`: products saved while the
new version was trained and embedded had their vectors written into the version that served
then. `None` turns both off; the scheduled `sync_product_vectors` then catches up.

If the broker is down the save (or activation) still succeeds: the failure is logged and the
next scheduled sync gives the product its vector. Finding the broker down costs a save a few
seconds (the client's connection attempts), so for `BROKER_BACKOFF_SECONDS` after a failure
nothing is sent: an outage slows one save every half minute, not every save.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import current_app

from recommendations import queues, task_names
from recommendations.models import ModelVersion
from recommendations.signal_processors import PendingKeysProcessor
from recommendations.vectors import activation
from recommendations.vectors.queries import active_version

BROKER_BACKOFF_SECONDS = 30.0

logger = logging.getLogger(__name__)
# When the broker last failed us: until BROKER_BACKOFF_SECONDS later, nothing is sent.
_broker_failed_at: float | None = None


class OnCommitSignalProcessor(PendingKeysProcessor):
    """Queues `embed_products` with the changed ids when the transaction commits, and
    `sync_product_vectors` when a model version is activated."""

    def setup(self) -> None:
        super().setup()
        activation.version_activated.connect(self.handle_activation, dispatch_uid=self.dispatch_uid)

    def teardown(self) -> None:
        super().teardown()
        activation.version_activated.disconnect(dispatch_uid=self.dispatch_uid)

    def process(self, keys: list[str]) -> None:
        enqueue_embedding(keys)

    def handle_activation(self, sender: type[ModelVersion], version: ModelVersion, **kwargs: Any) -> None:
        """Products saved while `version` was made have no vector in it, or an old one."""
        enqueue_sync(version)


def enqueue_embedding(product_ids: list[str]) -> bool:
    """Queue `embed_products`; log (never raise) when the broker cannot be reached.

    Sent by name, so a web process never imports the training code (torch) to save a
    product. Skipped while no model is active: there is nothing to embed with yet.
    """
    if active_version() is None:
        return False
    return _send(
        task_names.EMBED_PRODUCTS,
        [product_ids],
        f"embedding of {len(product_ids)} product(s)",
        f"The product(s) {', '.join(product_ids[:10])} are saved; the next scheduled "
        "sync_product_vectors gives them vectors.",
    )


def enqueue_sync(version: ModelVersion) -> bool:
    """Queue `sync_product_vectors` for the newly active `version`; log (never raise) when the
    broker cannot be reached: the scheduled sync does the same work a little later."""
    return _send(
        task_names.SYNC_PRODUCT_VECTORS,
        [],
        f"a sync of the product vectors of model version {version.pk}",
        "The version serves; the next scheduled sync_product_vectors embeds the products saved "
        "while it was made.",
    )


def _send(name: str, args: list[Any], what: str, meanwhile: str) -> bool:
    """Send task `name` to the default queue unless the broker failed us in the last
    `BROKER_BACKOFF_SECONDS`; returns whether it was sent. `what` names the work in the log,
    `meanwhile` says what happens to it instead."""
    global _broker_failed_at
    if _broker_failed_at is not None and time.monotonic() - _broker_failed_at < BROKER_BACKOFF_SECONDS:
        logger.info(
            "Not queuing %s: the broker was down %.0f s ago. %s",
            what,
            time.monotonic() - _broker_failed_at,
            meanwhile,
        )
        return False
    try:
        current_app.send_task(name, args=args, queue=queues.DEFAULT, retry=False)
    except Exception as exc:  # the broker is down or misconfigured: the save or activation stands
        _broker_failed_at = time.monotonic()
        logger.error(
            "Could not queue %s: %s. %s Nothing is queued for the next %.0f s. Check CELERY_BROKER_URL.",
            what,
            str(exc).rstrip("."),  # redis-py's own text ends its sentence
            meanwhile,
            BROKER_BACKOFF_SECONDS,
        )
        return False
    _broker_failed_at = None
    logger.debug("Queued %s", what)
    return True
