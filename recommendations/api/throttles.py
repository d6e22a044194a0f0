"""Request-rate limits: per API key, per signed-in user, per anonymous client address.

Rates come from `RECOMMENDATIONS["API_THROTTLE_RATES"]` and are counted in Django's cache.
While that cache cannot be reached the limits are not applied (each refusal to count is
logged): an outage of the cache must not take the shop's recommendations down with it.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from typing import Any
from weakref import WeakKeyDictionary

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.cache.backends.base import BaseCache
from django.core.cache.backends.redis import RedisCache
from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from recommendations.conf import rec_settings
from recommendations.models.api_keys import ApiKey

logger = logging.getLogger(__name__)

# Who a rate applies to, as `API_THROTTLE_RATES` names them.
KINDS = ("api_key", "user", "anonymous")
# A rate as DRF's `parse_rate` reads it: a count, then a period of which only the first letter
# counts ("600/minute", "100/hours", "10/d").
RATE = re.compile(r"[1-9][0-9]*/[smhd][a-z]*")


def rate_errors(rates: Any) -> list[str]:
    """What is wrong with `API_THROTTLE_RATES`, one line each; empty when nothing is. Checked
    by `manage.py check`, as a bad rate would otherwise fail every request of its kind."""
    example = '{"api_key": "6000/minute", "user": "600/minute", "anonymous": None}'
    if not isinstance(rates, dict):
        return [f"Rates must be a dict of kinds of client and rates, e.g. {example}."]
    errors = []
    for kind, rate in rates.items():
        if kind not in KINDS:
            errors.append(f"{kind!r} is not a kind of client; use one of {', '.join(KINDS)}.")
        elif rate is not None and not (isinstance(rate, str) and RATE.fullmatch(rate)):
            errors.append(
                f"{kind}: {rate!r} is not a rate; give N/second, N/minute, N/hour or N/day "
                '(e.g. "600/minute"), or None for no limit.'
            )
    return errors


class ApiRateThrottle(SimpleRateThrottle):
    """At most N requests per window, the window opening at a client's first request.

    One cache increment per request (on Redis one round trip: `_count_on_redis`). DRF's
    `SimpleRateThrottle` keeps the time of every request in the window and stores the whole
    list again on each one: at an API key's 6,000/minute, thousands of entries pickled per
    request. A window allows a burst of up to
    twice the rate across its end, which a rate limit can live with.
    """

    scope = "recommendations"

    def __init__(self) -> None:
        # The rate depends on who is asking, so it is chosen per request in allow_request().
        self.kind = self.ident = ""
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            self.kind, self.ident = "api_key", str(request.auth.pk)
        elif request.user is not None and request.user.is_authenticated:
            self.kind, self.ident = "user", str(request.user.pk)
        else:
            self.kind, self.ident = "anonymous", self.get_ident(request)
        self.rate = rec_settings.API_THROTTLE_RATES[self.kind]
        if self.rate is None:  # not limited: nothing to count
            return True
        self.num_requests, self.duration = self.parse_rate(self.rate)
        key = self.get_cache_key(request, view)
        backend = caches[DEFAULT_CACHE_ALIAS]  # what DRF's `self.cache` stands for
        try:
            count = self._count(backend, key)
            opened = backend.get(f"{key}:opened") if count > self.num_requests else None
        except Exception as error:  # the cache backend's own errors (redis, pymemcache) vary
            logger.warning(
                "Request not rate-limited: Django's cache could not be reached (%s: %s)",
                type(error).__name__,
                error,
            )
            return True
        if count <= self.num_requests:
            return True
        elapsed = time.time() - opened / 1000 if opened else 0.0
        self.wait_seconds = self.duration - elapsed
        return False

    def _count(self, backend: BaseCache, key: str) -> int:
        """This request's number in the window; a new window starts when the last expired and
        notes when it opened (integer milliseconds, which every cache backend keeps as is)."""
        now_ms = int(time.time() * 1000)
        if isinstance(backend, RedisCache):
            return _count_on_redis(backend, key, self.duration, now_ms)
        try:
            return backend.incr(key)
        except ValueError:  # no window open (the cache's expiry closed the last one)
            if backend.add(key, 1, self.duration):
                backend.set(f"{key}:opened", now_ms, self.duration)
                return 1
            return backend.incr(key)  # another request opened it meanwhile

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle_{self.scope}_{self.kind}_{self.ident}"

    def wait(self) -> float | None:
        """Seconds until the window closes (the Retry-After header)."""
        return None if self.wait_seconds is None else max(self.wait_seconds, 0.0)


# One round trip on Redis, where Django's `incr` costs two (EXISTS, then INCR): the first
# increment of a window also sets its expiry and when it opened, atomically.
COUNT_IN_WINDOW = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
  redis.call('EXPIRE', KEYS[1], ARGV[1])
  redis.call('SET', KEYS[2], ARGV[2], 'EX', ARGV[1])
end
return n
"""
COUNT_IN_WINDOW_SHA = hashlib.sha1(COUNT_IN_WINDOW.encode(), usedforsecurity=False).hexdigest()


# A Redis client per Django backend: Django builds a new one for every command, which cost
# more CPU than the command itself (100 of 180 us, measured).
_write_clients: WeakKeyDictionary[Any, Any] = WeakKeyDictionary()


def _count_on_redis(backend: RedisCache, key: str, seconds: int, now_ms: int) -> int:
    from redis.exceptions import NoScriptError

    counted, opened = backend.make_key(key), backend.make_key(f"{key}:opened")
    client = _write_clients.get(backend._cache)
    if client is None:  # the primary's, as Django picks it for a write
        client = _write_clients[backend._cache] = backend._cache.get_client(write=True)
    try:
        return int(client.evalsha(COUNT_IN_WINDOW_SHA, 2, counted, opened, seconds, now_ms))
    except NoScriptError:  # the server's first use of it (or after SCRIPT FLUSH)
        return int(client.eval(COUNT_IN_WINDOW, 2, counted, opened, seconds, now_ms))
