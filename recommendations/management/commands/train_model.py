"""`manage.py train_model [--activate]`: train, evaluate and register a model version.

On several GPUs of one machine it trains on all of them by itself (TRAINING_PROCESSES). It can
also run under torchrun, e.g. to span machines: ``torchrun --nproc-per-node=4 manage.py
train_model --activate``. Every rank runs this command: rank 0 does what it always does and
sends the training data to the others, which only train in step with it and write nothing,
so they need no database (`recommendations.learning.launch`). torchrun rather than a separate
entry point, because the command already resolves the settings and options every rank needs.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import DatabaseError, InterfaceError, OperationalError

from recommendations import pipeline, training
from recommendations.features import InsufficientData
from recommendations.learning import launch
from recommendations.learning.two_tower import TrainingError
from recommendations.management.errors import database_lost
from recommendations.models import ModelStatus, ModelVersion
from recommendations.progress import Progress, ProgressBar
from recommendations.vectors.activation import ActivationError

# What serves after an interruption, when the database cannot say which version it is.
SERVED_BEFORE = "the version that served before still serves"


class Command(BaseCommand):
    help = (
        "Train the two-tower model on the shop's events, evaluate it (leave-one-out, full ranking) "
        "and register it as a ready model version. With --activate, also embed products, stores and "
        "users and make it the version that serves (the same pipeline as the nightly task). "
        "Runs under torchrun, too: rank 0 does all this, the other ranks only train."
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
        bar = ProgressBar(self.stdout)
        progress = Progress(listeners=(bar,))
        # SIGTERM (docker stop, systemd, timeout) ends training as Ctrl-C does: the version is
        # marked failed rather than left "training" until the next purge.
        previous_handler = signal.signal(signal.SIGTERM, _interrupt)
        try:
            config = training.config_overrides(
                options["config"], epochs=options["epochs"], dimensions=options["dimensions"]
            )
            run = dict(
                config=config,
                window_days=options["window_days"],
                device=options["device"],
                progress=progress,
                log=bar.write,
            )
            device = training.model_config(config, options["device"]).device
            if launch.is_follower():
                self._follow(device)
                return
            # Under torchrun, leading here releases the other ranks however this ends (the
            # pipeline lock held, too little data): the training service leads inside it.
            with launch.lead(device=device):
                # Under the pipeline lock either way: a retrain already running (the nightly
                # task) makes this one exit, and the daily purge sees this one is alive.
                result = pipeline.retrain(activate=options["activate"], **run)
                if result.skipped:
                    raise CommandError(f"Not trained: {result.skipped}.")
                version = result.version
        except (InsufficientData, training.TrainingFailed, ActivationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        except (OperationalError, InterfaceError) as exc:  # the database went away mid-run
            raise database_lost(exc, _left_by_outage(progress.version_id)) from None
        except KeyboardInterrupt:
            raise CommandError(_interrupted(progress.version_id)) from None
        finally:
            signal.signal(signal.SIGTERM, previous_handler)
            bar.close()
        self.stdout.write(training.metrics_summary(version.metrics))
        if options["activate"]:
            state = "active: it serves now"
        else:
            state = (
                f"trained, not embedded: to serve it, `python manage.py embed --model-version {version.pk}`"
                f" then `python manage.py activate_model {version.pk}`"
            )
        self.stdout.write(
            self.style.SUCCESS(
                f"Model version {version.pk} is {state}. Trained in {version.training_seconds:.1f}s on "
                f"{version.device}: {version.n_events} interactions, {version.n_users} shoppers, "
                f"{version.n_items} products."
            )
        )

    def _follow(self, device: str) -> None:
        """A torchrun rank other than 0: train in step with rank 0, which reports and stores."""
        rank = f"Rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']}"
        try:
            model = launch.follow(device)
        except TrainingError as exc:  # e.g. the loss diverged: rank 0 says so and records it
            raise CommandError(f"{rank}: {exc}") from exc
        if model is None:
            self.stdout.write(f"{rank}: rank 0 had nothing to train; its output says why.")
        else:
            self.stdout.write(f"{rank}: trained in step with rank 0, which stores the model version.")


def _interrupted(version_id: int | None) -> str:
    """What an interruption left behind, read back from the version's row: it depends on the
    stage (training marks the version failed; embedding leaves it trained but not embedded)."""
    if version_id is None:
        return f"Interrupted before a model version was created; {_serving()}."
    try:
        version = ModelVersion.objects.filter(pk=version_id).first()
    except DatabaseError:  # interrupted mid-statement, the connection may be unusable
        return f"Interrupted while working on model version {version_id}; {SERVED_BEFORE}."
    served = _serving()
    if version is None or version.status == ModelStatus.FAILED:
        return f"Interrupted: model version {version_id} is marked failed, and {served}."
    if version.status == ModelStatus.ACTIVE:
        return f"Interrupted after model version {version_id} was activated: it serves now."
    if version.status == ModelStatus.READY and version.embedded_at is None:
        return (
            f"Interrupted: model version {version_id} is trained but not embedded, and {served}. To "
            f"serve it: `python manage.py embed --model-version {version_id}` then `python manage.py "
            f"activate_model {version_id}`; or retrain."
        )
    if version.status == ModelStatus.READY:
        return (
            f"Interrupted: model version {version_id} is embedded but not active, and {served}. "
            f"`python manage.py activate_model {version_id}` makes it serve."
        )
    return f"Interrupted: model version {version_id} is {version.status}, and {served}."


def _serving() -> str:
    """Which version serves after the interruption: none yet when it stopped the first training
    (`make demo` interrupted), not "the one that served before"."""
    try:
        active = ModelVersion.objects.filter(status=ModelStatus.ACTIVE).values_list("pk", flat=True).first()
    except DatabaseError:
        return SERVED_BEFORE
    return f"model version {active} still serves" if active else "no model version serves yet"


def _left_by_outage(version_id: int | None) -> str:
    """What a database outage left, naming the version it hit (its row may be unreachable)."""
    if version_id is None:
        return "No model version was created."
    return (
        f"Model version {version_id} does not serve, and the next retrain marks it failed if it was "
        "still training."
    )


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt
