"""Celery tasks of the privacy package: thin doors into the services.

Imported from the app's `ready()`, so every worker registers them without the host's Celery
app having to know this module.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from recommendations.events.partitions import ensure_upcoming_partitions
from recommendations.privacy.retention import purge_expired_events as purge_expired_events_service


@shared_task(name="recommendations.privacy.tasks.purge_expired_events", ignore_result=True)
def purge_expired_events() -> dict[str, Any]:
    """Daily upkeep of the events table (idempotent, safe to re-run): create the partitions of
    this month and the next few, then drop or delete events older than EVENT_RETENTION_DAYS.
    The partitions are made even when retention is off."""
    created = ensure_upcoming_partitions()
    report = purge_expired_events_service()
    return {
        "deleted": report.deleted,
        "days": report.days,
        "counters": report.counters,
        "partitions_created": len(created),
        "partitions_dropped": report.partitions,
    }
