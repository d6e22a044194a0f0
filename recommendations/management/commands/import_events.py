"""`manage.py import_events FILE` or `import_events --dataset NAME FOLDER`: bulk-load history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommendations.events.importers import (
    DEFAULT_BATCH_ROWS,
    DatabaseLost,
    ImportFailed,
    import_dataset_events,
    import_event_file,
)
from recommendations.events.textfiles import error_lines
from recommendations.management.errors import add_source_options, command_errors
from recommendations.progress import Progress, ProgressBar


def batch_size(text: str) -> int:
    """argparse type of --batch-rows: a whole number >= 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number >= 1")
    return int(text)


class Command(BaseCommand):
    help = (
        "Import behaviour events with PostgreSQL COPY from a CSV/JSONL file in the REST API's event "
        "shape, or from a public dataset's folder (--dataset). Safe to re-run: stored events are skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a .csv/.jsonl file (optionally .gz), or the dataset's folder")
        parser.add_argument(
            "--batch-rows", type=batch_size, default=DEFAULT_BATCH_ROWS, help="rows per transaction"
        )
        parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
        add_source_options(parser)

    def handle(self, *args: Any, path: str, dataset: str | None, batch_rows: int, **options: Any) -> None:
        source = Path(path)
        bar = ProgressBar(self.stdout)
        progress = None if options["no_progress"] else Progress(listeners=(bar,))
        with command_errors(source, ImportFailed, DatabaseLost, cut_short_override=not dataset):
            try:
                if dataset:
                    result = import_dataset_events(dataset, source, batch_rows=batch_rows, progress=progress)
                else:
                    result = import_event_file(
                        source,
                        batch_rows=batch_rows,
                        progress=progress,
                        whole_lines=not options["last_line_is_whole"],
                    )
            finally:
                bar.close()
        repeated = f", {result.repeated} repeated within the file" if result.repeated else ""
        opted_out = f", {result.opted_out} dropped: users opted out" if result.opted_out else ""
        left_out = "".join(f", {count} skipped: {reason}" for reason, count in result.left_out.items())
        self.stdout.write(
            self.style.SUCCESS(
                f"Read {result.read} rows in {result.seconds:.1f}s ({result.rate:,.0f} rows/s): "
                f"stored {result.stored} new events, skipped {result.skipped} already stored"
                f"{repeated}{opted_out}{left_out}"
                + (f", created {result.users_created} users." if result.users_created else ".")
            )
        )
        if result.conflicting:
            # A dataset's event ids derive from its own keys; a file's are the file's to fix.
            fix = "" if dataset else " Give each event its own event_id and import those rows again."
            self.stdout.write(
                self.style.WARNING(
                    f"{result.conflicting} row(s) repeat the event_id of an earlier row with other values; "
                    f"only the earlier row's event is stored.{fix}"
                    + error_lines(result.conflicts, total=result.conflicting)
                )
            )
