"""Permissions of the REST API: who may call which endpoint, as staff or with an API key.

A request made with an API key has an anonymous user and the `ApiKey` as `request.auth`;
a browser's has its session user and no `auth`. Every check here starts from `api_key()`.
"""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from recommendations.models.api_keys import ApiKey, Scope

READ_SCOPE = Scope.RECOMMENDATIONS_READ.value


def api_key(request: Request) -> ApiKey | None:
    """The API key the request was made with, or None for a browser (session) request."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def may_read_anyone(request: Request) -> bool:
    """Staff, or an API key holding the read scope: they may ask for any visitor's lists."""
    key = api_key(request)
    if key is not None:
        return key.has_scopes((READ_SCOPE,))
    return bool(request.user and request.user.is_staff)


class HasScope(permissions.BasePermission):
    """The request carries an active API key with every scope in the view's `required_scopes`."""

    message = "This API key lacks a required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        required = tuple(getattr(view, "required_scopes", ()))
        key = api_key(request)
        if key is None:
            return False
        if not key.has_scopes(required):
            self.message = f"This API key lacks the scope(s) {', '.join(required)}; add them in the admin."
            return False
        return True


class IsBrowserSession(permissions.BasePermission):
    """A browser request that passed session authentication (with its CSRF check)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth is None and request.successful_authenticator is not None


class CanReadRecommendations(permissions.BasePermission):
    """Browsers always (what they see is checked per parameter); API keys need the read scope."""

    message = f"This API key lacks the {READ_SCOPE} scope; add it in the admin."

    def has_permission(self, request: Request, view: Any) -> bool:
        key = api_key(request)
        return key is None or key.has_scopes((READ_SCOPE,))


class StaffOrScope(permissions.BasePermission):
    """Staff users, or an API key with the view's `required_scopes`; writes are staff only."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if request.user and request.user.is_staff:
            return True
        required = tuple(getattr(view, "required_scopes", ()))
        key = api_key(request)
        if key is None:
            self.message = "Sign in as a staff user" + (
                f", or send an API key with the {', '.join(required)} scope." if required else "."
            )
            return False
        if not (required and request.method in permissions.SAFE_METHODS):
            self.message = "API keys may not do this: sign in as a staff user."
            return False
        if not key.has_scopes(required):
            self.message = f"This API key may not do this: it needs the {', '.join(required)} scope."
            return False
        return True
