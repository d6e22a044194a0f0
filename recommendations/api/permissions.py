"""Permissions of the REST API: who may call which endpoint, as staff or with an API key.

A request made with an API key has an anonymous user and the `ApiKey` as `request.auth`;
a browser's has its session user and no `auth`. Every check here starts from `api_key()`.

Staff get through the API what the admin grants them, no more: being staff only lets a user
in, and each view asks for the Django model permissions the admin asks for the same work
(DRF's `DjangoModelPermissions` idea, with reading guarded as the admin guards it). One rule
per view, in this module: `ModelPermissionsOrScope` for the campaign and experiment viewsets,
`AudiencePermission` for a campaign's audience, `may_read_anyone` for `?user=` / `?session_id=`.
Superusers hold every permission. API keys keep their scopes.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Model
from rest_framework import exceptions, permissions
from rest_framework.request import Request

from recommendations.access import Action, has_model_permission, may_preview_shoppers, permission_names
from recommendations.models import Campaign, Segment, UserPreview
from recommendations.models.api_keys import ApiKey, Scope

READ_SCOPE = Scope.RECOMMENDATIONS_READ.value
# What staff need to ask for someone else's lists, named in refusals (change is enough too).
PREVIEW_PERMISSION = f'the admin\'s "preview as user" permission ({permission_names("view", UserPreview)[0]})'

# What each HTTP method does to a model viewset's rows (a POST to one object, such as an
# experiment's start or stop, changes it: see `ModelPermissionsOrScope`).
METHOD_ACTIONS: dict[str, Action] = {
    "GET": "view",
    "HEAD": "view",
    "OPTIONS": "view",
    "POST": "add",
    "PUT": "change",
    "PATCH": "change",
    "DELETE": "delete",
}


def api_key(request: Request) -> ApiKey | None:
    """The API key the request was made with, or None for a browser (session) request."""
    return request.auth if isinstance(request.auth, ApiKey) else None


def may_read_anyone(request: Request) -> bool:
    """An API key holding the read scope, or staff who may preview shoppers in the admin
    (`access.may_preview_shoppers`): they may ask for any visitor's lists."""
    key = api_key(request)
    if key is not None:
        return key.has_scopes((READ_SCOPE,))
    return bool(request.user) and may_preview_shoppers(request.user)


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
    """Staff holding every model permission `staff_needs()` names, or an API key with the view's
    `required_scopes` (reads only: writes are for staff). Subclasses say what staff need."""

    def staff_needs(self, request: Request, view: Any) -> list[tuple[Action, type[Model]]]:
        """(action, model) pairs, each checked as the admin checks it (`access.has_model_permission`)."""
        raise NotImplementedError

    def has_permission(self, request: Request, view: Any) -> bool:
        user = request.user
        if user and user.is_staff:
            missing = [
                " or ".join(permission_names(action, model))
                for action, model in self.staff_needs(request, view)
                if not has_model_permission(user, action, model)
            ]
            if missing:
                self.message = (
                    f"You need the permission(s) {'; '.join(missing)}, as in the admin: "
                    "ask a superuser to grant them to you or to one of your groups."
                )
            return not missing
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


class ModelPermissionsOrScope(StaffOrScope):
    """A model viewset: reading needs the model's view (or change) permission, creating "add",
    replacing or editing "change", deleting "delete". A POST to one object (an experiment's
    start or stop) changes it, so it needs "change" too."""

    def staff_needs(self, request: Request, view: Any) -> list[tuple[Action, type[Model]]]:
        action = METHOD_ACTIONS.get(request.method or "")
        if action is None:
            raise exceptions.MethodNotAllowed(request.method)
        if action == "add" and getattr(view, "detail", False):
            action = "change"
        return [(action, view.queryset.model)]


class AudiencePermission(StaffOrScope):
    """A campaign's audience: the username and e-mail of each shopper it should reach, in bulk.

    Those rows are the members of the campaign's latest segment (or those a segment would hold
    now), and each is a person's account. The admin shows segment members to whoever may view
    segments, and people's e-mails on the user pages to whoever may view the user model; so
    the export needs the view (or change) permission of the campaign, of segments and of the
    host's user model. A clerk who may edit campaigns does not get every shopper's e-mail.
    """

    def staff_needs(self, request: Request, view: Any) -> list[tuple[Action, type[Model]]]:
        return [("view", Campaign), ("view", Segment), ("view", get_user_model())]
