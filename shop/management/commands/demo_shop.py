"""Prepare the demo shop: catalogue and behaviour, a trained model, and an admin login."""

import json
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser

from recommendations.models import ModelStatus, ModelVersion
from shop.models import Product

ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin"  # noqa: S105 - printed for the local demo only


class Command(BaseCommand):
    help = "Load the demo shop (once), train recommendations, and create the admin login."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--force", action="store_true", help="Reload even if products exist.")
        parser.add_argument(
            "--train-seconds",
            type=float,
            default=60,
            help="training budget of the demo model (default 60; the nightly retrain has none)",
        )
        parser.add_argument("--port", type=int, default=8000, help="the web port the addresses printed name")

    def handle(
        self, *args: Any, seed: int, force: bool, train_seconds: float, port: int, **options: Any
    ) -> None:
        started = time.monotonic()
        seeded = force or not Product.objects.exists()
        if seeded:
            call_command("seed_demo", seed=seed, stdout=self.stdout)
        else:
            self.stdout.write("Demo catalogue already loaded; use --force to reload it.")
        # The storefront's blocks read the search index and the popularity / pair tables, and
        # the model's "similar" lists blend in the titles of the search index: build it first.
        call_command("refresh_serving", stdout=self.stdout)
        self._train(seeded, train_seconds)
        if settings.DEBUG:
            self._ensure_admin()
            login = f"admin: http://127.0.0.1:{port}/admin/ as {ADMIN_USERNAME} / {ADMIN_PASSWORD}"
        else:  # a deployed site gets no well-known password
            login = "no admin login made with DEBUG false: run manage.py createsuperuser"
        self.stdout.write(
            self.style.SUCCESS(
                f"Demo shop ready in {time.monotonic() - started:.1f}s: http://127.0.0.1:{port}/ ({login})"
            )
        )

    def _train(self, seeded: bool, seconds: float) -> None:
        """Train, embed and activate a model now (synchronously), so the first page served is
        personalised; later retrains run in the Celery worker on the beat schedule."""
        if not seeded and ModelVersion.objects.filter(status=ModelStatus.ACTIVE).exists():
            self.stdout.write("A trained model is already active; use --force to reload and retrain.")
            return
        config = json.dumps({"max_seconds": seconds})
        call_command("train_model", activate=True, config=config, stdout=self.stdout)

    def _ensure_admin(self) -> None:
        User = get_user_model()
        if not User.objects.filter(username=ADMIN_USERNAME).exists():
            User.objects.create_superuser(ADMIN_USERNAME, "admin@example.com", ADMIN_PASSWORD)
