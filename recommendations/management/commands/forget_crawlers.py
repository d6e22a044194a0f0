"""`python manage.py forget_crawlers`: delete the stored events of crawlers' user agents."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from recommendations.events.bots import forget_crawler_events
from recommendations.management.errors import database_errors
from recommendations.progress import Progress, ProgressBar


class Command(BaseCommand):
    help = (
        "Delete the stored events whose user agent BOT_USER_AGENT_PATTERNS now calls a crawler's "
        "(anonymous events other than purchases, as at ingestion). Run it after adding a pattern: "
        "such events stored before it count in trending lists, pairs and analytics until deleted. "
        "Safe to interrupt and run again."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        bar = ProgressBar(self.stdout)
        try:
            with database_errors():
                forgotten = forget_crawler_events(Progress(listeners=(bar,)))
        finally:
            bar.close()
        self.stdout.write(
            self.style.SUCCESS(
                f"Deleted {forgotten.events} event(s) of {forgotten.agents} crawler user agent(s) in "
                f"{forgotten.seconds:.1f}s. Trending lists and pairs are recomputed from what remains "
                "at their next hourly refresh (`python manage.py refresh_serving` does it now)."
            )
        )
