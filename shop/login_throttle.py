"""Failed sign-ins counted per username and client address, so a password cannot be guessed
without end: after `LOGIN_FAILURE_LIMIT` failures within `LOGIN_FAILURE_WINDOW_SECONDS` the
sign-in form refuses that username from that address until the window closes (the window
opens at the first failure); a successful sign-in clears the count.

Counted in Django's cache. While it cannot be reached sign-ins are not limited (and each one
says so in the log), as the API's rate limits do: a cache outage must not lock shoppers out.
"""

from __future__ import annotations

import hashlib
import logging

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)


def _key(request: HttpRequest, username: str) -> str:
    # The client address as the API's anonymous limit reads it (NUM_PROXIES), hashed with the
    # username so neither is stored in the cache as is.
    client = BaseThrottle().get_ident(request)
    digest = hashlib.sha256(f"{username.casefold()}\0{client}".encode()).hexdigest()
    return f"login-failures:{digest}"


def is_locked(request: HttpRequest, username: str) -> bool:
    """Whether this username has failed too often from this address to be tried again now."""
    try:
        return cache.get(_key(request, username), 0) >= settings.LOGIN_FAILURE_LIMIT
    except Exception as error:  # the cache backend's own errors (redis, pymemcache) vary
        _log_outage(error)
        return False


def record_failure(request: HttpRequest, username: str) -> None:
    key = _key(request, username)
    try:
        if not cache.add(key, 1, settings.LOGIN_FAILURE_WINDOW_SECONDS):
            cache.incr(key)
    except ValueError:  # the window closed between add() and incr(): this failure opens one
        cache.add(key, 1, settings.LOGIN_FAILURE_WINDOW_SECONDS)
    except Exception as error:
        _log_outage(error)


def clear(request: HttpRequest, username: str) -> None:
    try:
        cache.delete(_key(request, username))
    except Exception as error:
        _log_outage(error)


def _log_outage(error: Exception) -> None:
    logger.warning(
        "Sign-in failures not counted: Django's cache could not be reached (%s: %s)",
        type(error).__name__,
        error,
    )
