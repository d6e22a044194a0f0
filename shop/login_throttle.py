"""Failed sign-ins counted per username and client address, so a password cannot be guessed
without end: after `LOGIN_FAILURE_LIMIT` failures within `LOGIN_FAILURE_WINDOW_SECONDS` that
username is refused from that address until the window closes (the window opens at the first
failure); a successful sign-in clears the count.

Counted and refused where every sign-in passes (the shop's form, the admin's, the browsable
API's): Django's `user_login_failed` and `user_logged_in` signals count, and the
authentication backend `ThrottledModelBackend` refuses. The shop's form also answers a refused
sign-in with 429 and says how long to wait (`views.LoginView`).

Counted in Django's cache. While it cannot be reached sign-ins are not limited (and each one
says so in the log), as the API's rate limits do: a cache outage must not lock shoppers out.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core.cache import cache
from django.core.exceptions import PermissionDenied
from django.dispatch import receiver
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


class ThrottledModelBackend(ModelBackend):
    """Django's `ModelBackend`, refusing unchecked a username locked out from this address."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> Any:
        if request is not None and username and is_locked(request, username):
            raise PermissionDenied  # authenticate() tries no other backend and reports a failure
        return super().authenticate(request, username, password, **kwargs)


@receiver(user_login_failed, dispatch_uid="shop.login_throttle.count_failure")
def count_failure(
    sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any
) -> None:
    if request is not None:
        record_failure(request, str(credentials.get("username", "")))


@receiver(user_logged_in, dispatch_uid="shop.login_throttle.clear_failures")
def clear_failures(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:
        clear(request, user.get_username())


def _log_outage(error: Exception) -> None:
    logger.warning(
        "Sign-in failures not counted: Django's cache could not be reached (%s: %s)",
        type(error).__name__,
        error,
    )
