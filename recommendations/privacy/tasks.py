"""Celery tasks of the privacy package: thin doors into the services.

Imported from the app's `ready()`, so every worker registers them without the host's Celery
app having to know this module.
"""

from __future__ import annotations

from typing import Any

from celery import shared_task

from recommendations.privacy.retention import purge_expired_events as purge_expired_events_service


@shared_task(name="recommendations.privacy.tasks.purge_expired_events", ignore_result=True)
def purge_expired_events() -> dict[str, Any]:
    """Daily: delete events older than EVENT_RETENTION_DAYS (idempotent, safe to re-run)."""
    report = purge_expired_events_service()
    return {"deleted": report.deleted, "days": report.days, "counters": report.counters}
