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
# Full collections a tenth as often. A worker's caches (cards, candidate lists, a query's
# matches) grow with traffic, so by default every 10 young collections that promote a
# quarter more objects started a full one: 13 per worker in 30 s of the serving benchmark,
# each holding the GIL for some 50 ms (a stall for every thread of the worker, and a
# thirteenth of its CPU went to the collector). Young collections stay as they are: what
# requests leave in cycles is still freed within milliseconds.
gc.set_threshold(700, 10, 100)
