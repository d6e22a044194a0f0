"""Celery tasks of the serving package: thin doors into its services.

Imported by `recommendations.tasks`, so every worker that loads the engine's tasks registers
them; the schedule is a beat entry (migration `0012_served_retention_schedule`).
"""

from __future__ import annotations

from celery import shared_task

from recommendations.serving import attribution


@shared_task(name="recommendations.serving.tasks.prune_served", ignore_result=True)
def prune_served() -> int:
    """Daily: delete served lists older than SERVED_RETENTION_DAYS (idempotent); returns how many."""
    return attribution.prune_served()
