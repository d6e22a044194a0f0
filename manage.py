#!/usr/bin/env python
"""Django's command-line utility for the demo shop."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from shop.database import NO_START_ENV, check_external_databases

    if sys.argv[1:3] in (["embedded_db", "status"], ["embedded_db", "stop"]):
        os.environ.setdefault(NO_START_ENV, "1")  # loading the settings must not start the server
    try:
        check_external_databases(os.environ)
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # Configuration problems get one clear line, not a traceback.
        sys.exit(f"Configuration error: {exc}")


if __name__ == "__main__":
    main()
