"""Short-lived caching of computed candidate lists (Django's cache).

Keys of personal lists include the visitor's history fingerprint (the newest event id) and
the active model version, so a new event or an activation starts a new entry in every
process at once, with no invalidation messages: this works with a per-process cache too.
Business rules (stock, exclusions, the page's shown set) run after the cache, per request.

What every visitor shares and a request reads whole (a search query's matches, with their
vectors) is kept in the process instead (`ProcessCache`), as it is: unpickling it from
Django's cache on every request cost a search a seventh of its CPU.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from django.core.cache import cache
from django.core.signals import setting_changed

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


class ProcessCache:
    """Values by key in this process, not copied, each for `SERVING_CACHE_SECONDS`; the least
    recently used go first beyond `size`. Values must not be changed by whoever reads them."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        _process_caches.append(self)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value kept for `key`, else `compute()` (kept when caching is on)."""
        seconds = rec_settings.SERVING_CACHE_SECONDS
        if not seconds:
            return compute()
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] > now:
                self._entries.move_to_end(key)
                return entry[1]
        value = compute()  # outside the lock: two threads may compute one key, never block each other
        with self._lock:
            self._entries[key] = (now + seconds, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_process_caches: list[ProcessCache] = []


def clear_process_caches() -> None:
    """Empty every `ProcessCache` (settings changed; tests start afresh)."""
    for kept in _process_caches:
        kept.clear()


def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RECOMMENDATIONS", "CACHES"):
        clear_process_caches()


setting_changed.connect(_clear_on_change)
