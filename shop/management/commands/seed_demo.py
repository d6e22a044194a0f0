"""`manage.py seed_demo`: generate the demo shop's catalogue, shoppers and behaviour."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop.demo_data import DEMO_PASSWORD, seed_demo


class Command(BaseCommand):
    help = (
        "Replace the demo data with a generated shop: stores, categories, products, shoppers with "
        "hidden tastes and their views, carts, purchases, searches and ratings. Deterministic per seed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--seed", type=int, default=7)
        parser.add_argument("--products", type=int, default=600)
        parser.add_argument("--users", type=int, default=300)
        parser.add_argument("--days", type=int, default=120, help="days of history, ending at --end")
        parser.add_argument("--end", type=dt.date.fromisoformat, help="last day (YYYY-MM-DD), default today")

    def handle(self, *args: Any, seed: int, products: int, users: int, days: int, **options: Any) -> None:
        try:
            summary = seed_demo(
                seed=seed,
                products=products,
                users=users,
                days=days,
                end=options.get("end"),
                log=self.stdout.write,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {summary.products} products, {summary.users} shoppers (password "
                f"{DEMO_PASSWORD!r}) and {summary.events} events over {days} days in {summary.seconds:.1f}s."
            )
        )
