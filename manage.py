#!/usr/bin/env python
"""Django's command-line utility for the demo shop."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    from shop.database import check_external_databases

    try:
        check_external_databases(os.environ)
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:
        # Configuration problems get one clear line, not a traceback.
        sys.exit(f"Configuration error: {exc}")


if __name__ == "__main__":
    main()
