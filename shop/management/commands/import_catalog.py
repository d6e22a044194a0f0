"""`manage.py import_catalog FILE` or `import_catalog --dataset NAME FOLDER`: load products and stores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from recommendations.events.textfiles import error_lines
from recommendations.management.errors import add_source_options, command_errors
from recommendations.progress import Progress, ProgressBar
from shop.catalog_import import CatalogImportFailed, import_catalog_file, import_dataset_catalog


class Command(BaseCommand):
    help = (
        "Import stores, the category tree and products from a CSV/JSONL file (columns sku, title, "
        "category, store, price, [store_name, description, brand]) or a public dataset's folder. "
        "Re-running updates the products that changed, in place. Category names longer than 120 "
        "characters are cut to 120 (names alike up to there are one category)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", help="a .csv/.jsonl file, or the dataset's folder")
        add_source_options(parser)

    def handle(self, *args: Any, path: str, dataset: str | None, **options: Any) -> None:
        source = Path(path)
        bar = ProgressBar(self.stdout)
        progress = Progress(listeners=(bar,))
        with command_errors(source, CatalogImportFailed, cut_short_override=not dataset):
            try:
                if dataset:
                    result = import_dataset_catalog(dataset, source, progress)
                else:
                    result = import_catalog_file(
                        source, progress, whole_lines=not options["last_line_is_whole"]
                    )
            finally:
                bar.close()
        repeated = f"; {result.repeated} rows repeated an earlier row's sku" if result.repeated else ""
        self.stdout.write(
            self.style.SUCCESS(
                f"Catalogue imported in {result.seconds:.1f}s: {result.products_created} products created, "
                f"{result.products_updated} updated; {result.stores_created} stores created, "
                f"{result.stores_updated} updated; {result.categories_created} categories created{repeated}."
            )
        )
        if result.conflicts:
            # A dataset's skus are its own ids; a file's are the file's to fix.
            fix = "" if dataset else " Keep one row per sku (or give each product its own) and import again."
            self.stdout.write(
                self.style.WARNING(
                    f"{len(result.conflicts)} row(s) repeat the sku of an earlier row with other values; "
                    f"only the earlier row's product is imported.{fix}{error_lines(result.conflicts)}"
                )
            )
