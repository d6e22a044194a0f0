"""`manage.py activate_model ID | --rollback | --list`: choose the version that serves."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from recommendations import pipeline
from recommendations.management.errors import SERVING_AFTER_AN_OUTAGE, database_errors
from recommendations.models import ModelVersion
from recommendations.models.registry import format_metric
from recommendations.vectors import activation


class Command(BaseCommand):
    help = (
        "Make a ready model version the one that serves (atomically: requests see the old version "
        "until the switch, then the new one), roll back to the previously active one, or list them."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("version", nargs="?", type=int, help="the model version id to activate")
        parser.add_argument(
            "--rollback", action="store_true", help="re-activate the previously active version"
        )
        parser.add_argument(
            "--list", action="store_true", dest="list_versions", help="list model versions, changing nothing"
        )

    def handle(
        self, *args: Any, version: int | None, rollback: bool, list_versions: bool, **options: Any
    ) -> None:
        with database_errors(SERVING_AFTER_AN_OUTAGE):
            self._handle(version, rollback, list_versions)

    def _handle(self, version: int | None, rollback: bool, list_versions: bool) -> None:
        if list_versions:
            if version is not None or rollback:
                raise CommandError(
                    "--list only lists the versions and changes nothing: give it alone, or drop it to "
                    "activate a version id or --rollback."
                )
            self._list()
            return
        if version is None and not rollback:
            self._list()
            raise CommandError("Give a version id to activate, or --rollback.")
        if version is not None and rollback:
            raise CommandError("Give either a version id or --rollback, not both.")
        try:
            result = activation.rollback() if rollback else activation.activate(pipeline.get_version(version))
        except (activation.ActivationError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        if result.already_active:
            self.stdout.write(f"Model version {result.version.pk} is active already; nothing changed.")
            return
        kept = f"; version {result.previous.pk} is kept for rollback" if result.previous else ""
        self.stdout.write(self.style.SUCCESS(f"Model version {result.version.pk} is active{kept}."))
        if result.warning:
            self.stderr.write(self.style.WARNING(result.warning))

    def _list(self) -> None:
        self.stdout.write(f"{'id':>5}  {'status':9} {'NDCG@10':>8} {'HR@10':>7}  {'created':16}  algorithm")
        for v in ModelVersion.objects.all()[:50]:
            ndcg, hr = format_metric(v.metrics, "NDCG@10"), format_metric(v.metrics, "HR@10")
            self.stdout.write(
                f"{v.pk:>5}  {v.status:9} {ndcg:>8} {hr:>7}  {v.created_at:%Y-%m-%d %H:%M}  {v.algorithm}"
            )
