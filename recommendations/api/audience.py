"""Whose recommendations a REST request asks for, shared by every endpoint that serves a visitor."""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request

from recommendations.api.permissions import PREVIEW_PERMISSION, READ_SCOPE, api_key, may_read_anyone
from recommendations.serving import history
from recommendations.serving.errors import NotFound
from recommendations.serving.types import Audience


def resolve_audience(request: Request, params: dict[str, Any]) -> Audience:
    """Whose recommendations: the caller's own, or (when allowed) the `user`/`session_id` asked for.

    A server with an API key serves the lists it asks for to that visitor, so they count as
    the visitor's exposure to an experiment; staff signed in to look at someone else's lists
    (allowed where they may preview shoppers in the admin) are not that visitor, and their look
    is neither counted nor recorded as a served list.
    """
    user_id, session_id = params.get("user"), params.get("session_id")
    own = Audience.for_request(request._request)
    if user_id is not None:
        own_request = own.given_user is not None and str(own.given_user_id) == user_id
        if not (own_request or may_read_anyone(request)):
            raise exceptions.PermissionDenied(
                "You may only get your own recommendations; staff with "
                f"{PREVIEW_PERMISSION} and API keys with the {READ_SCOPE} scope may ask for any user."
            )
        try:
            audience = history.audience_for_user(user_id)
        except NotFound as exc:
            raise exceptions.NotFound(str(exc)) from exc
        audience.record_exposure = own_request or api_key(request) is not None
        return audience
    if session_id is not None:
        own_session = session_id == own.given_session_id
        if not (own_session or may_read_anyone(request)):
            raise exceptions.PermissionDenied(
                "You may only get your own session's recommendations; staff with "
                f"{PREVIEW_PERMISSION} and API keys with the {READ_SCOPE} scope may ask for any session."
            )
        return Audience(session_id=session_id, record_exposure=own_session or api_key(request) is not None)
    return own
