"""`manage.py train_model [--activate]`: train, evaluate and register a model version."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations import pipeline, training
from recommendations.features import InsufficientData
from recommendations.progress import Progress, ProgressBar
from recommendations.vectors.activation import ActivationError


class Command(BaseCommand):
    help = (
        "Train the two-tower model on the shop's events, evaluate it (leave-one-out, full ranking) "
        "and register it as a ready model version. With --activate, also embed products, stores and "
        "users and make it the version that serves (the same pipeline as the nightly task)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--activate", action="store_true", help="embed and activate the new version")
        parser.add_argument(
            "--window-days", type=float, help="train on the last N days of events (default: all)"
        )
        parser.add_argument("--epochs", type=int, help="override TRAINING['epochs']")
        parser.add_argument("--dimensions", type=int, help="override TRAINING['dim']")
        parser.add_argument("--config", default="{}", help="more overrides as JSON, e.g. '{\"lr\": 0.001}'")
        parser.add_argument("--device", help="cpu, cuda, cuda:1 or auto (default: RECOMMENDATIONS['DEVICE'])")

    def handle(self, *args: Any, **options: Any) -> None:
        config = _overrides(options)
        bar = ProgressBar(self.stdout)
        progress = Progress(listeners=(bar,))
        run = dict(
            config=config,
            window_days=options["window_days"],
            device=options["device"],
            progress=progress,
            log=bar.write,
        )
        try:
            if options["activate"]:
                result = pipeline.retrain(**run)
                if result.skipped:
                    raise CommandError(f"Not trained: {result.skipped}.")
                version = result.version
            else:
                version = training.train_model(**run)
        except (InsufficientData, training.TrainingFailed, ActivationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        finally:
            bar.close()
        self.stdout.write(training.metrics_summary(version.metrics))
        state = "active: it serves now" if options["activate"] else "ready (activate_model to serve it)"
        self.stdout.write(
            self.style.SUCCESS(
                f"Model version {version.pk} is {state}. Trained in {version.training_seconds:.1f}s on "
                f"{version.device}: {version.n_events} interactions, {version.n_users} shoppers, "
                f"{version.n_items} products."
            )
        )


def _overrides(options: dict[str, Any]) -> dict[str, Any]:
    try:
        config = json.loads(options["config"])
    except json.JSONDecodeError as exc:
        raise CommandError(f"--config must be a JSON object: {exc}") from exc
    if not isinstance(config, dict):
        raise CommandError("--config must be a JSON object, e.g. '{\"lr\": 0.001}'.")
    for name in ("epochs", "dimensions"):
        if options.get(name) is not None:
            config["dim" if name == "dimensions" else name] = options[name]
    return config
