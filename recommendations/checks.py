"""System checks (`manage.py check`) for configuration that works, but badly."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core import checks

from recommendations.conf import rec_settings

LOCMEM = "django.core.cache.backends.locmem.LocMemCache"
# Entries serving needs in a per-process cache: at about 100 requests/s per process, most
# of them storing a list (one per visitor, product or query), this holds a minute of them,
# the default SERVING_CACHE_SECONDS (docs/benchmarks.md, "Sixth session").
SERVING_CACHE_ENTRIES = 5000


@checks.register(checks.Tags.caches)
def check_serving_cache(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """Warn when serving's lists go to a per-process cache too small to keep them.

    Django's LocMemCache keeps 300 entries unless told otherwise. Serving stores a list per
    visitor, product and search query, so under traffic the shared lists (a popular query's
    matches, trending) are evicted within a second or two and recomputed on nearly every
    request.
    """
    if not rec_settings.SERVING_CACHE_SECONDS:
        return []
    config = settings.CACHES.get("default", {})
    if config.get("BACKEND") != LOCMEM:
        return []
    entries = int(config.get("OPTIONS", {}).get("MAX_ENTRIES", 300))
    if entries >= SERVING_CACHE_ENTRIES:
        return []
    return [
        checks.Warning(
            f"The default cache is a LocMemCache of {entries} entries: recommendation lists are "
            "evicted within seconds under traffic and recomputed on most requests.",
            hint=(
                f"Set CACHES['default']['OPTIONS'] = {{'MAX_ENTRIES': {SERVING_CACHE_ENTRIES}}} or more, "
                "or use a shared cache such as Redis."
            ),
            id="recommendations.W001",
        )
    ]
