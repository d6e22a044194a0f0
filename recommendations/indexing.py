"""Keeping product vectors in step with the catalogue as products are saved.

`RECOMMENDATIONS["SIGNAL_PROCESSOR"]` names a class whose `setup()` connects handlers for the
adapted product model only (see `recommendations.signal_processors`). The default,
`OnCommitSignalProcessor`, queues the ids of saved or deleted products once the transaction
commits (a rolled-back save queues nothing), in one task per transaction, and the `default`
worker embeds them from their content features within seconds. `None` turns on-save
embedding off; the scheduled `sync_product_vectors` then catches up.

If the broker is down the save still succeeds: the failure is logged and the next scheduled
sync gives the product its vector. Finding the broker down costs a save a few seconds (the
client's connection attempts), so for `BROKER_BACKOFF_SECONDS` after a failure saves do not
try again: an outage slows one save every half minute, not every save.
"""

from __future__ import annotations

import logging
import time

from celery import current_app

from recommendations import queues, task_names
from recommendations.signal_processors import PendingKeysProcessor
from recommendations.vectors.queries import active_version

BROKER_BACKOFF_SECONDS = 30.0

logger = logging.getLogger(__name__)
# When the broker last failed us: until BROKER_BACKOFF_SECONDS later, nothing is sent.
_broker_failed_at: float | None = None


class OnCommitSignalProcessor(PendingKeysProcessor):
    """Queues `embed_products` with the changed ids when the transaction commits."""

    def process(self, keys: list[str]) -> None:
        enqueue_embedding(keys)


def enqueue_embedding(product_ids: list[str]) -> bool:
    """Queue `embed_products`; log (never raise) when the broker cannot be reached.

    Sent by name, so a web process never imports the training code (torch) to save a
    product. Skipped while no model is active: there is nothing to embed with yet.
    """
    global _broker_failed_at
    if active_version() is None:
        return False
    if _broker_failed_at is not None and time.monotonic() - _broker_failed_at < BROKER_BACKOFF_SECONDS:
        logger.info(
            "Not queuing embedding of %d product(s): the broker was down %.0f s ago; the next scheduled "
            "sync_product_vectors gives them vectors.",
            len(product_ids),
            time.monotonic() - _broker_failed_at,
        )
        return False
    try:
        current_app.send_task(
            task_names.EMBED_PRODUCTS, args=[product_ids], queue=queues.DEFAULT, retry=False
        )
    except Exception as exc:  # the broker is down or misconfigured: the save itself stands
        _broker_failed_at = time.monotonic()
        logger.error(
            "Could not queue embedding of %d product(s) %s: %s. The products are saved; the next "
            "scheduled sync_product_vectors gives them vectors. Saves do not try again for %.0f s. "
            "Check CELERY_BROKER_URL.",
            len(product_ids),
            ", ".join(product_ids[:10]),
            exc,
            BROKER_BACKOFF_SECONDS,
        )
        return False
    _broker_failed_at = None
    logger.debug("Queued embedding of product(s) %s", ", ".join(product_ids[:10]))
    return True
