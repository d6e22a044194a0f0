"""Short-lived caching of computed candidate lists (the Django cache that
`SERVING_CACHE_ALIAS` names: a per-process one is cheapest, see `conf`).

Keys of personal lists include the visitor's history fingerprint (the newest event id) and
the active model version, so a new event or an activation starts a new entry in every
process at once, with no invalidation messages: this works with a per-process cache too.
Business rules (stock, exclusions, the page's shown set) run after the cache, per request.

What every visitor shares and a request reads whole (a search query's matches, with their
vectors) is kept in the process instead (`ProcessCache`), as it is: unpickling it from
Django's cache on every request cost a search a seventh of its CPU. What is read again after
it expired is served once more while a thread of the process recomputes it, so a popular
query never waits for its recomputation (at 1M products, ranking "shampoo"'s 20,000
keyword matches takes PostgreSQL 20-35 ms). Search matches have their own, longer lifetime
(`SEARCH_CACHE_SECONDS`): with the lists' minute, three processes' recomputations took a
seventh of a core at 1M products and held up other requests' statements.

A `ProcessCache` made with `shared_as` also stores what it computes in Django's cache, and a
process that lacks a value looks there before computing it: with a cache that processes share
(Redis, Memcached), a cluster computes each search query's matches once a lifetime, not once
a process (at 1M products, every process that restarted spent 20-130 ms on each query's first
sight). The copy is read only when the process has none, never per request.

Django's cache is an optimisation here: when it cannot be reached, the value is computed and
the failure logged, and the request is answered as without a cache.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Mapping
from functools import partial
from typing import Any, TypeVar

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.signals import setting_changed
from django.db import close_old_connections, connections

from recommendations.conf import rec_settings
from recommendations.serving.process import PerProcess

logger = logging.getLogger(__name__)

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
PREFIX = "recommendations:candidates:"


def cached(key: tuple[Hashable, ...], compute: Callable[[], T]) -> T:
    """`compute()` once per `SERVING_CACHE_SECONDS` for this key (always when 0), kept in the
    cache that `SERVING_CACHE_ALIAS` names."""
    seconds = rec_settings.SERVING_CACHE_SECONDS
    if not seconds:
        return compute()
    return from_cache(_digest(PREFIX, key), compute, seconds, alias=rec_settings.SERVING_CACHE_ALIAS)


def from_cache(key: str, compute: Callable[[], T], seconds: float, *, alias: str = DEFAULT_CACHE_ALIAS) -> T:
    """Django's cache's value for `key`, else `compute()`'s, kept there `seconds`. With the
    cache unreachable the value is computed and the failure logged: a cache outage slows
    answers down rather than failing them."""
    value = _read_shared(key, alias)
    if value is None:
        value = compute()
        _write_shared(key, value, seconds, alias)
    return value


def many_from_cache(
    keys: Mapping[K, str],
    compute: Callable[[list[K]], Mapping[K, T]],
    seconds: float,
    *,
    alias: str = DEFAULT_CACHE_ALIAS,
) -> dict[K, T]:
    """`from_cache` for several values at once (your key -> the cache's key): one read and one
    write of Django's cache, and one `compute(missing)` for those absent, which must answer
    each of them (None reads as absent: cache a value that says "nothing" instead)."""
    digests = list(keys.values())
    stored = _shared(lambda: caches[alias].get_many(digests), "read", {})
    values = {k: stored[key] for k, key in keys.items() if stored.get(key) is not None}
    missing = [k for k in keys if k not in values]
    if missing:
        computed = compute(missing)
        values.update((k, computed[k]) for k in missing)
        _shared(lambda: caches[alias].set_many({keys[k]: computed[k] for k in missing}, seconds), "written")
    return values


def cached_keys(keys: Iterable[str], *, alias: str = DEFAULT_CACHE_ALIAS) -> set[str]:
    """Which of `keys` Django's cache holds now (none while it is down)."""
    keys = list(keys)
    return set(_shared(lambda: caches[alias].get_many(keys), "read", {}))


def add_to_cached(key: str, delta: int, *, alias: str = DEFAULT_CACHE_ALIAS) -> None:
    """Add `delta` to a number Django's cache holds (atomically where the cache is shared);
    nothing when it holds none: the number is computed afresh when next read."""

    def add() -> None:
        with contextlib.suppress(ValueError):  # not cached (or expired meanwhile)
            caches[alias].incr(key, delta)

    _shared(add, "written")


def forget(keys: Iterable[str], *, alias: str = DEFAULT_CACHE_ALIAS) -> None:
    """Drop `keys` from Django's cache: their values are computed afresh when next read."""
    keys = list(keys)
    _shared(lambda: caches[alias].delete_many(keys), "written")


def _digest(prefix: str, key: Hashable) -> str:
    return prefix + hashlib.blake2b(repr(key).encode(), digest_size=16).hexdigest()


def _shared(operation: Callable[[], T], done: str, failed: T = None) -> T:
    """Django's cache `operation`, or `failed` when the cache is down (logged): a cache outage
    slows answers down rather than failing them. `done` says what failed ("read", "written")."""
    try:
        return operation()
    except Exception as error:  # the cache backend's own errors (redis, pymemcache) vary
        logger.warning("Django's cache could not be %s (%s: %s)", done, type(error).__name__, error)
        return failed


def _read_shared(digest: str, alias: str) -> Any:
    """The value for `digest` in Django's cache `alias`; None when absent or the cache is down."""
    return _shared(lambda: caches[alias].get(digest), "read")


def _write_shared(digest: str, value: Any, seconds: float, alias: str) -> None:
    _shared(lambda: caches[alias].set(digest, value, seconds), "written")


class ProcessCache:
    """Values by key in this process, not copied, each fresh for the seconds that the setting
    `lifetime` names (0: not kept); the least recently used go first beyond `size`. Values
    must not be changed by whoever reads them.

    A value read within as many seconds again after it expired is returned as it is while the
    process's refresh thread recomputes it (stale-while-revalidate); one read later still
    computes it in the request. A failed refresh is logged and leaves the old value.

    With `shared_as` (a key prefix), what a process computes is also stored in Django's cache
    for as long, and a process without a fresh value takes that copy, if fresh, before
    computing it: its lifetime runs from when it was computed, so a cluster's processes
    refresh together and the first one's result serves the rest.
    """

    def __init__(
        self, size: int, lifetime: str = "SERVING_CACHE_SECONDS", *, shared_as: str | None = None
    ) -> None:
        self.size = size
        self.lifetime = lifetime
        # Prefix of this cache's copies in Django's cache (None: kept in the process only).
        self.shared_as = shared_as
        self._entries: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self._refreshing: set[Hashable] = set()
        # Bumped by clear(): a refresh started before then must not bring back what it emptied.
        self._generation = 0
        _process_caches.append(self)

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The value kept for `key`, else `compute()` (kept when caching is on)."""
        seconds = getattr(rec_settings, self.lifetime)
        if not seconds:
            return compute()
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and now < entry[0] + seconds:
                self._entries.move_to_end(key)
                if now >= entry[0] and key not in self._refreshing:
                    self._refreshing.add(key)
                    refresh = partial(self._refresh, key, compute, self._generation)
                    Refresher.for_this_process().submit(refresh)
                return entry[1]
            generation = self._generation
        # Outside the lock: two threads may compute one key, never block each other.
        value, age = self._load(key, compute, seconds)
        self._keep(key, value, generation, age)
        return value

    def _load(self, key: Hashable, compute: Callable[[], T], seconds: float) -> tuple[T, float]:
        """The value and its age in seconds: another process's copy from Django's cache while
        it is fresh (`shared_as`), else `compute()`'s, which is then shared."""
        if self.shared_as is None:
            return compute(), 0.0
        # Not `from_cache`: a copy stored a moment after it was computed outlives its lifetime
        # by that moment in Django's cache, and must not be taken as fresh then.
        digest = _digest(self.shared_as, key)
        stored = _read_shared(digest, DEFAULT_CACHE_ALIAS)
        if stored is not None:
            computed_at, value = stored
            age = time.time() - computed_at
            if 0 <= age < seconds:
                return value, age
        value = compute()
        _write_shared(digest, (time.time(), value), seconds, DEFAULT_CACHE_ALIAS)
        return value, 0.0

    def _keep(self, key: Hashable, value: Any, generation: int, age: float = 0.0) -> None:
        with self._lock:
            self._refreshing.discard(key)
            if generation != self._generation:
                return
            self._entries[key] = (time.monotonic() + getattr(rec_settings, self.lifetime) - age, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def _refresh(self, key: Hashable, compute: Callable[[], Any], generation: int) -> None:
        started = time.perf_counter()
        try:
            value, age = self._load(key, compute, getattr(rec_settings, self.lifetime))
        except Exception:
            with self._lock:
                self._refreshing.discard(key)
            logger.exception("Recomputing a kept value failed; the old one is served until it expires")
            return
        self._keep(key, value, generation, age)
        logger.debug("Refreshed a kept value in %.1f ms", (time.perf_counter() - started) * 1000)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._refreshing.clear()
            self._generation += 1

    def __len__(self) -> int:
        return len(self._entries)


class Refresher(PerProcess):
    """One thread per process that recomputes expired `ProcessCache` values, one at a time.

    It runs each computation as a request would, between `close_old_connections()` calls,
    and closes its connections after `IDLE_SECONDS` with nothing to do (a connection kept
    under steady traffic; no idle backend left behind in PostgreSQL).
    """

    IDLE_SECONDS = 5.0

    def __init__(self) -> None:
        super().__init__()
        self.jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self.thread = threading.Thread(target=self._run, name="process-cache-refresh", daemon=True)
        self.thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        self.jobs.put(job)

    def wait(self, timeout: float = 30.0) -> bool:
        """Finish what was submitted so far and close the thread's connections (tests: before
        the database is emptied); False if that took longer than `timeout`."""
        done = threading.Event()

        def close_and_signal() -> None:  # runs in the thread: its own connections
            connections.close_all()
            done.set()

        self.jobs.put(close_and_signal)
        return done.wait(timeout)

    def _run(self) -> None:
        while True:
            try:
                job = self.jobs.get(timeout=self.IDLE_SECONDS)
            except queue.Empty:
                connections.close_all()  # this thread's own
                continue
            close_old_connections()
            try:
                job()
            finally:
                close_old_connections()


_process_caches: list[ProcessCache] = []


def wait_for_refreshes(timeout: float = 30.0) -> bool:
    """Finish this process's background recomputations, if any (`Refresher.wait`)."""
    refresher = Refresher.running()
    return refresher is None or refresher.wait(timeout)


def clear_process_caches() -> None:
    """Empty every `ProcessCache` (settings changed; tests start afresh)."""
    for kept in _process_caches:
        kept.clear()


def _clear_on_change(*, setting: str, **kwargs: Any) -> None:
    if setting in ("RECOMMENDATIONS", "CACHES"):
        clear_process_caches()


setting_changed.connect(_clear_on_change)
