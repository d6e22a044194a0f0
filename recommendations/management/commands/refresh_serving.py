"""`python manage.py refresh_serving`: rebuild the tables serving reads besides the vectors.

The search index (`ProductDocument`, from the catalogue through the adapter) and the
popularity and bought/viewed-together tables (from events); served lists older than
`SERVED_RETENTION_DAYS` are deleted too, as the daily `prune_served` task does, so a shop
that runs this command from cron rather than Celery beat keeps them in bounds. Run it after
loading a catalogue or importing events; the periodic `refresh_statistics` task keeps
popularity fresh.
"""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommendations.progress import Progress, ProgressBar
from recommendations.serving.attribution import prune_served
from recommendations.serving.catalog import index_products
from recommendations.serving.statistics import history_outside_windows, refresh_statistics


class Command(BaseCommand):
    help = (
        "Rebuild the search index and the popularity / co-occurrence tables that serving reads, and "
        "delete served lists older than SERVED_RETENTION_DAYS (as the daily prune_served task does)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--skip-index", action="store_true", help="leave the search index as it is")
        parser.add_argument(
            "--skip-statistics", action="store_true", help="leave popularity and pairs as they are"
        )

    def handle(
        self, *args: Any, skip_index: bool = False, skip_statistics: bool = False, **options: Any
    ) -> None:
        started = time.monotonic()
        bar = ProgressBar(self.stdout)
        progress = Progress(listeners=(bar,))
        if not skip_index:
            indexed = index_products(progress=progress)
            bar.close()
            self.stdout.write(f"Search index: {indexed} products.")
        if not skip_statistics:
            counts = refresh_statistics(progress=progress)
            bar.close()
            self.stdout.write(f"Popularity: {counts['popularity']} products; pairs: {counts['pairs']}.")
            if not counts["popularity"] and (hint := history_outside_windows()):
                self.stdout.write(self.style.WARNING(hint))
        self.stdout.write(f"Served lists pruned: {prune_served()}.")
        self.stdout.write(self.style.SUCCESS(f"Done in {time.monotonic() - started:.1f} s."))
