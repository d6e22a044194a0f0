"""Celery tasks: thin doors into the services, for workers and beat. Every task of the app is
here, so a worker registers them all by importing this one module, which the host's Celery app
finds as Django's apps' `tasks` modules are found (`app.autodiscover_tasks()`, Celery's Django
guide): nothing needs naming in the host, in `ready()` or in a module imported only for its side
effects. Names come from `recommendations.task_names`, which also routes and sends them.

Routing (`recommendations.queues.TASK_ROUTES`, in the host's `CELERY_TASK_ROUTES`): `retrain`
and `embed` need the model on whole catalogues and go to the `gpu` queue; the rest are light
and go to `default`. On a `gpu`
worker with several GPUs, `retrain` trains on all of them: the task's process stays rank 0 (task
id, lock, progress, retries unchanged) and starts one training process per other GPU
(`RECOMMENDATIONS["TRAINING_PROCESSES"]`, `recommendations.learning.launch`).

Every task is safe to run twice: writes are delete-then-copy per model version, activation is
one transaction, and a retried `retrain` (or `embed`) resumes the version its first attempt
made, activating it only if no other version was activated after it was made (an operator's
newer choice stays; the result says `skipped: superseded by version N`); segments, served
lists and expired events are rewritten or deleted in transactions. So every task acknowledges
its message only at the end (`acks_late`) and is requeued if the worker process dies
(`reject_on_worker_lost`), so a killed worker's task runs again, except with the demo's
filesystem broker when the whole worker dies: that broker keeps unacknowledged tasks in the
worker's memory only. Then the next retrain marks what the lost one left `training` failed,
and activation refuses a version whose embed did not finish.

Each task has a hard time limit by the work it does (below), so a stuck task frees its worker;
only `retrain` and `embed` have a soft one too, which lets them record the version they leave
as failed. Every task returns a small summary, stored only when the host configures a result
backend (`CELERY_RESULT_BACKEND`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task

from recommendations import pipeline, task_names
from recommendations.events.partitions import ensure_upcoming_partitions
from recommendations.features import InsufficientData
from recommendations.marketing import audiences
from recommendations.privacy import retention
from recommendations.serving import attribution, statistics
from recommendations.vectors import activation, embedding

logger = logging.getLogger(__name__)

# Seconds. A retrain of ~200k interactions takes ~15 min on 2 CPU cores; the broker's
# visibility timeout (settings) must stay above the hard limit.
RETRAIN_SOFT_TIME_LIMIT = 3 * 3600
RETRAIN_TIME_LIMIT = RETRAIN_SOFT_TIME_LIMIT + 300
EMBED_SOFT_TIME_LIMIT = 3600
EMBED_TIME_LIMIT = EMBED_SOFT_TIME_LIMIT + 300
# Upkeep over whole tables (retiring versions, refreshing segments, pruning served lists and
# events): minutes on a large shop, so an hour is a stuck task, not a slow one.
UPKEEP_TIME_LIMIT = 3600 + 300
# A few products or one table of statistics: seconds to a few minutes.
LIGHT_TIME_LIMIT = 600

durable = {"acks_late": True, "reject_on_worker_lost": True}
light = {"time_limit": LIGHT_TIME_LIMIT, **durable}
upkeep = {"time_limit": UPKEEP_TIME_LIMIT, **durable}


@shared_task(
    bind=True,
    name=task_names.RETRAIN,
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
    name=task_names.EMBED,
    soft_time_limit=EMBED_SOFT_TIME_LIMIT,
    time_limit=EMBED_TIME_LIMIT,
    **durable,
)
def embed(self: Task) -> dict[str, Any]:
    """Recompute product, store and user vectors with the active model (a new version)."""
    result = pipeline.refresh_vectors(task_id=self.request.id or "", progress=pipeline.task_progress(self))
    return result.as_dict()


@shared_task(name=task_names.EMBED_PRODUCTS, **light)
def embed_products(product_ids: list[str]) -> dict[str, int]:
    """On product save/delete (see `recommendations.indexing`): refresh these products' vectors."""
    return embedding.sync_products(product_ids).as_dict()


@shared_task(name=task_names.SYNC_PRODUCT_VECTORS, **light)
def sync_product_vectors() -> dict[str, int]:
    """Scheduled: embed products that have no vector yet or were saved since theirs was
    computed (e.g. while the broker was down) and drop vectors of products that are gone or
    inactive."""
    return embedding.sync_all_products().as_dict()


@shared_task(name=task_names.REFRESH_STATISTICS, **light)
def refresh_statistics() -> dict[str, int]:
    """Hourly: the popularity and co-occurrence tables serving falls back on."""
    return statistics.refresh_statistics()


@shared_task(name=task_names.PURGE, **upkeep)
def purge() -> dict[str, Any]:
    """Daily: retire model versions other than the active, the previous, and those experiments serve."""
    result = activation.purge()
    return {"retired": result.retired, "vectors_deleted": result.vectors_deleted, "skipped": result.skipped}


@shared_task(name=task_names.REFRESH_SEGMENTS, **upkeep)
def refresh_segments() -> dict[str, int]:
    """Periodic: refresh every segment marked auto-refresh (counts of refreshed and failed)."""
    return audiences.refresh_due_segments()


@shared_task(name=task_names.PRUNE_SERVED, **upkeep)
def prune_served() -> int:
    """Daily: delete served lists older than SERVED_RETENTION_DAYS (idempotent); returns how many."""
    return attribution.prune_served()


@shared_task(name=task_names.PURGE_EXPIRED_EVENTS, **upkeep)
def purge_expired_events() -> dict[str, Any]:
    """Daily upkeep of the events table (idempotent, safe to re-run): create the partitions of
    this month and the next few, then drop or delete events older than EVENT_RETENTION_DAYS.
    The partitions are made even when retention is off."""
    created = ensure_upcoming_partitions()
    report = retention.purge_expired_events()
    return {
        "deleted": report.deleted,
        "days": report.days,
        "counters": report.counters,
        "partitions_created": len(created),
        "partitions_dropped": report.partitions,
    }
