"""`manage.py embed`: recompute vectors with the active model, or for some products, or
rebuild the active version's indexes."""

from __future__ import annotations

from argparse import ArgumentTypeError
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations import pipeline
from recommendations.features import InsufficientData
from recommendations.management.errors import SERVING_AFTER_AN_OUTAGE, database_errors
from recommendations.models import ModelStatus
from recommendations.progress import Progress, ProgressBar
from recommendations.vectors import embedding
from recommendations.vectors.activation import ActivationError


def version_number(value: str) -> int:
    """A model version id: a whole number >= 1. Ids start at 1, and 0 must not quietly mean
    "no version given" (the active one)."""
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise ArgumentTypeError(
            f"{value!r} is not a model version: --model-version takes a version id (a whole number "
            ">= 1, see `python manage.py activate_model --list`); leave it out to re-embed everything "
            "with the active model into a new version."
        )
    return number


class Command(BaseCommand):
    help = (
        "Recompute product, store and user vectors with the active model into a new version and "
        "activate it (the old one is kept for rollback). --model-version N only writes the vectors and "
        "indexes of version N; --products embeds some products into the active version; --missing "
        "embeds every product that has no vector yet or was saved since it was computed; --reindex "
        "rebuilds the active version's vector indexes and tunes its searches again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group()
        target.add_argument(
            "--model-version",
            type=version_number,
            metavar="ID",
            help="write the vectors of this ready (or the active) version; activates nothing",
        )
        target.add_argument("--products", nargs="+", metavar="ID", help="embed these products (primary keys)")
        target.add_argument(
            "--missing",
            action="store_true",
            help="embed products without a vector or saved since theirs was computed, as the scheduled "
            "sync does",
        )
        target.add_argument(
            "--reindex",
            action="store_true",
            help="rebuild the active version's vector indexes and tune its searches again "
            "(after many single-product updates)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        bar = ProgressBar(self.stdout)
        progress = Progress(listeners=(bar,))
        try:
            with database_errors(SERVING_AFTER_AN_OUTAGE):
                if options["products"] or options["missing"]:
                    message = self._sync(options["products"], progress)
                elif options["reindex"]:
                    message = self._reindex(progress)
                else:
                    message = self._embed(options["model_version"], progress)
        except (InsufficientData, ActivationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(self.style.SUCCESS(message))

    def _sync(self, products: list[str] | None, progress: Progress) -> str:
        if products:
            result = embedding.sync_products(products)
        else:
            result = embedding.sync_all_products(progress=progress)
        if result.skipped:
            raise CommandError(f"Nothing embedded: {result.skipped}. {pipeline.how_to_activate()}")
        return f"Embedded {result.written} product(s), removed {result.removed} vector(s)."

    def _reindex(self, progress: Progress) -> str:
        outcome = pipeline.reindex(progress=progress)
        if outcome.skipped:
            raise CommandError(f"Not reindexed: {outcome.skipped}.")
        return (
            f"Rebuilt {len(outcome.indexes)} vector index(es) of model version {outcome.version.pk} "
            f"and tuned its searches again in {outcome.seconds:.1f}s."
        )

    def _embed(self, version_id: int | None, progress: Progress) -> str:
        if version_id is not None:
            outcome = pipeline.embed_version(pipeline.get_version(version_id), progress)
        else:
            outcome = pipeline.refresh_vectors(progress=progress)
        if outcome.skipped:
            raise CommandError(f"Not embedded: {outcome.skipped}.")
        counts = outcome.vectors
        version = outcome.version
        active = outcome.activated or version.status == ModelStatus.ACTIVE
        state = "active" if active else "ready (not activated)"
        advice = "" if active else f" Make it serve with `python manage.py activate_model {version.pk}`."
        return (
            f"Model version {version.pk} is {state}: {counts['products']:.0f} product, "
            f"{counts['stores']:.0f} store and {counts['users']:.0f} user vectors "
            f"in {outcome.seconds:.1f}s.{advice}"
        )
