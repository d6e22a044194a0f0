"""Permissions of the REST API."""

from __future__ import annotations

from typing import Any

from rest_framework import permissions
from rest_framework.request import Request

from recommendations.models.api_keys import ApiKey


class HasScope(permissions.BasePermission):
    """The request carries an active API key with every scope in the view's `required_scopes`."""

    message = "This API key lacks a required scope."

    def has_permission(self, request: Request, view: Any) -> bool:
        required = tuple(getattr(view, "required_scopes", ()))
        if not isinstance(request.auth, ApiKey):
            return False
        if not request.auth.has_scopes(required):
            self.message = f"This API key lacks the scope(s) {', '.join(required)}; add them in the admin."
            return False
        return True


class IsBrowserSession(permissions.BasePermission):
    """A browser request that passed session authentication (with its CSRF check)."""

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.auth is None and request.successful_authenticator is not None
