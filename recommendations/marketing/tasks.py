"""Celery tasks of the marketing package: thin doors into `audiences`."""

from __future__ import annotations

from celery import shared_task

from recommendations.marketing import audiences


@shared_task(name="recommendations.marketing.tasks.refresh_segments", ignore_result=True)
def refresh_segments() -> dict[str, int]:
    """Periodic: refresh every segment marked auto-refresh (counts of refreshed and failed)."""
    return audiences.refresh_due_segments()
