"""Celery tasks: thin doors into the pipeline services, for workers and beat.

Routing (`recommendations.queues.TASK_ROUTES`, in the host's `CELERY_TASK_ROUTES`): `retrain`
and `embed` need the model on whole catalogues and go to the `gpu` queue; the rest are light
and go to `default`. On a `gpu`
worker with several GPUs, `retrain` trains on all of them: the task's process stays rank 0 (task
id, lock, progress, retries unchanged) and starts one training process per other GPU
(`RECOMMENDATIONS["TRAINING_PROCESSES"]`, `recommendations.learning.launch`).

Every task is safe to run twice: writes are delete-then-copy per model version, activation
is one transaction, and a retried `retrain` resumes the version its first attempt trained.
Long tasks acknowledge their message only at the end (`acks_late`) and are requeued if the
worker process dies (`reject_on_worker_lost`), so a killed worker's task runs again, except
with the demo's filesystem broker when the whole worker dies: that broker keeps unacknowledged
tasks in the worker's memory only. Then the next retrain marks what the lost one left
`training` failed, and activation refuses a version whose embed did not finish.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from recommendations import pipeline
from recommendations.features import InsufficientData
from recommendations.marketing.tasks import refresh_segments  # noqa: F401 - registers it with the host's worker
from recommendations.serving import statistics
from recommendations.serving.tasks import prune_served  # noqa: F401 - registers it with the host's worker
from recommendations.vectors import activation, embedding

logger = logging.getLogger(__name__)

# Seconds. A retrain of ~200k interactions takes ~15 min on 2 CPU cores; the broker's
# visibility timeout (settings) must stay above the hard limit.
RETRAIN_SOFT_TIME_LIMIT = 3 * 3600
RETRAIN_TIME_LIMIT = RETRAIN_SOFT_TIME_LIMIT + 300
EMBED_SOFT_TIME_LIMIT = 3600
EMBED_TIME_LIMIT = EMBED_SOFT_TIME_LIMIT + 300
LIGHT_TIME_LIMIT = 600

durable = {"acks_late": True, "reject_on_worker_lost": True}


@shared_task(
    bind=True,
    name="recommendations.tasks.retrain",
    soft_time_limit=RETRAIN_SOFT_TIME_LIMIT,
    time_limit=RETRAIN_TIME_LIMIT,
    **durable,
)
def retrain(self: Task, activate: bool = True, window_days: float | None = None) -> dict[str, Any]:
    """Nightly: train -> evaluate -> embed -> activate. Skips (logged) if one already runs."""
    try:
        result = pipeline.retrain(
            task_id=self.request.id or "",
            progress=pipeline.task_progress(self),
            activate=activate,
            window_days=window_days,
        )
    except InsufficientData as exc:
        logger.warning("Retrain skipped: %s", exc)
        return {"skipped": str(exc)}
    return result.as_dict()


@shared_task(
    bind=True,
    name="recommendations.tasks.embed",
    soft_time_limit=EMBED_SOFT_TIME_LIMIT,
    time_limit=EMBED_TIME_LIMIT,
    **durable,
)
def embed(self: Task) -> dict[str, Any]:
    """Recompute product, store and user vectors with the active model (a new version)."""
    result = pipeline.refresh_vectors(task_id=self.request.id or "", progress=pipeline.task_progress(self))
    return result.as_dict()


@shared_task(name="recommendations.tasks.embed_products", time_limit=LIGHT_TIME_LIMIT, **durable)
def embed_products(product_ids: list[str]) -> dict[str, int]:
    """On product save/delete (see `recommendations.indexing`): refresh these products' vectors."""
    return embedding.sync_products(product_ids).as_dict()


@shared_task(name="recommendations.tasks.sync_product_vectors", time_limit=LIGHT_TIME_LIMIT, **durable)
def sync_product_vectors() -> dict[str, int]:
    """Scheduled: embed products that have no vector yet (e.g. saved while the broker was down)
    and drop vectors of products that are gone or inactive."""
    return embedding.sync_all_products().as_dict()


@shared_task(name="recommendations.tasks.refresh_statistics", time_limit=LIGHT_TIME_LIMIT, **durable)
def refresh_statistics() -> dict[str, int]:
    """Hourly: the popularity and co-occurrence tables serving falls back on."""
    return statistics.refresh_statistics()


@shared_task(name="recommendations.tasks.purge", time_limit=EMBED_TIME_LIMIT, **durable)
def purge() -> dict[str, Any]:
    """Daily: retire model versions other than the active, the previous, and those experiments serve."""
    result = activation.purge()
    return {"retired": result.retired, "vectors_deleted": result.vectors_deleted, "skipped": result.skipped}
