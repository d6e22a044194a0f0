"""WSGI entry point (gunicorn shop.wsgi)."""

import gc
import os

from django.core.wsgi import get_wsgi_application
from django.urls import get_resolver

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
application = get_wsgi_application()

# What start-up loads (Django, DRF, every view the URLconf imports) lives as long as the
# process: frozen out of the garbage collector's sight, so that its full collections scan
# only what requests leave behind. Each scanned some 150,000 start-up objects while holding
# the GIL, stalling every thread of the worker (docs/benchmarks.md, "Sixth session").
get_resolver().url_patterns  # noqa: B018 - imports the views now rather than on the first request
gc.freeze()
