"""How REST clients prove who they are.

- `ApiKeyAuthentication`: server-to-server clients send `Authorization: Api-Key <key>`.
  The request's user is anonymous and `request.auth` is the `ApiKey` (checked by `HasScope`).
- `CsrfSessionAuthentication`: browsers (the beacon) use their session cookie. Unlike DRF's
  `SessionAuthentication`, the CSRF token is required for anonymous visitors too: their
  events are attributed to their session and merged into their account at login, so another
  site must not be able to write them.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import authentication, exceptions
from rest_framework.request import Request

from recommendations.models.api_keys import ApiKey

KEYWORD = "Api-Key"


def _api_key_header(request: Request | HttpRequest) -> tuple[bool, str]:
    """Whether the Authorization header names the Api-Key scheme, and the rest. Schemes are
    case-insensitive (RFC 7235): "api-key <key>" was ignored, and the request treated as
    anonymous."""
    header = authentication.get_authorization_header(request).decode("latin-1")
    keyword, _, raw = header.partition(" ")
    return keyword.lower() == KEYWORD.lower(), raw


def sends_api_key(request: Request | HttpRequest) -> bool:
    """Whether the request claims an API key (before it is checked): which caps apply to it
    before authentication runs. A wrong key is refused by `ApiKeyAuthentication` anyway."""
    return _api_key_header(request)[0]


class ApiKeyAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[AnonymousUser, ApiKey] | None:
        claimed, raw = _api_key_header(request)
        if not claimed:
            return None
        raw = raw.strip()
        if not raw or " " in raw:
            raise exceptions.AuthenticationFailed(f"Send the key as 'Authorization: {KEYWORD} <key>'.")
        api_key = ApiKey.objects.get_verified(raw)
        if api_key is None:
            raise exceptions.AuthenticationFailed(
                "Unknown or revoked API key. Create a new key in the admin."
            )
        api_key.touch()
        return AnonymousUser(), api_key

    def authenticate_header(self, request: Request) -> str:
        return KEYWORD


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request: Any, reason: str) -> str:
        return reason


class CsrfSessionAuthentication(authentication.BaseAuthentication):
    """The session's user (or an anonymous visitor), after a CSRF check either way."""

    def authenticate(self, request: Request) -> tuple[Any, None]:
        django_request = request._request
        check = _CsrfCheck(lambda req: None)
        check.process_request(django_request)
        reason = check.process_view(django_request, None, (), {})
        if reason:
            raise exceptions.PermissionDenied(
                f"CSRF failed: {reason.rstrip('.')}. Send the csrftoken cookie's value in the X-CSRFToken "
                "header (or as csrf_token in the body), or authenticate with an API key."
            )
        user = getattr(django_request, "user", None)
        return (user if user is not None else AnonymousUser()), None
