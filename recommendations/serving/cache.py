"""Short-lived caching of computed candidate lists (Django's cache).

Keys of personal lists include the visitor's history fingerprint (the newest event id) and
the active model version, so a new event or an activation starts a new entry in every
process at once, with no invalidation messages: this works with a per-process cache too.
Business rules (stock, exclusions, the page's shown set) run after the cache, per request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.core.cache import cache

from recommendations.conf import rec_settings

T = TypeVar("T")
PREFIX = "recommendations:candidates:"


def cached(key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
    """`compute()` once per `SERVING_CACHE_SECONDS` for this key (always when 0)."""
    seconds = rec_settings.SERVING_CACHE_SECONDS
    if not seconds:
        return compute()
    digest = PREFIX + hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()
    value = cache.get(digest)
    if value is None:
        value = compute()
        cache.set(digest, value, seconds)
    return value
