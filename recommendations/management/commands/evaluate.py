"""`manage.py evaluate`: the two-tower model and every classic recommender, side by side."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations import training
from recommendations.features import InsufficientData
from recommendations.management.errors import database_errors


class Command(BaseCommand):
    help = (
        "Fit the two-tower model and the classic recommenders (popularity, item-kNN, EASE, ALS) on "
        "the same split of the shop's events and print one table of full-ranking metrics. "
        "Nothing is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--split",
            choices=["leave-one-out", "temporal"],
            default="leave-one-out",
            help="last new product per shopper (default), or the latest 10%% of events",
        )
        parser.add_argument(
            "--folds",
            type=int,
            help="k-fold over shoppers instead: each fold's shoppers are held out and judged on their last "
            "new product (leave-one-out; not with --split temporal)",
        )
        parser.add_argument("--models", help="comma-separated subset, e.g. two_tower,ease")
        parser.add_argument("--window-days", type=float, help="use the last N days of events (default: all)")
        parser.add_argument("--epochs", type=int, help="override TRAINING['epochs']")
        parser.add_argument("--dimensions", type=int, help="override TRAINING['dim']")
        parser.add_argument("--config", default="{}", help="more two-tower overrides as JSON")
        parser.add_argument("--device", help="cpu, cuda or auto (default: RECOMMENDATIONS['DEVICE'])")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["folds"] is not None and options["folds"] < 2:
            raise CommandError("--folds must be at least 2.")
        models = (
            None
            if options["models"] is None
            else [m.strip() for m in options["models"].split(",") if m.strip()]
        )
        try:
            with database_errors("Evaluating stores nothing."):
                training.evaluate(
                    split=options["split"].replace("-", "_"),
                    folds=options["folds"],
                    models=models,
                    config=training.config_overrides(
                        options["config"], epochs=options["epochs"], dimensions=options["dimensions"]
                    ),
                    window_days=options["window_days"],
                    device=options["device"],
                    log=self.stdout.write,
                )
        except (InsufficientData, training.TrainingFailed, ValueError) as exc:
            raise CommandError(str(exc)) from exc
