"""How the OpenAPI schema describes the API's two ways in and its errors (drf-spectacular).

drf-spectacular looks an authentication class up by its dotted path; without these it warns
on every operation (and `check --deploy` is not clean) and the schema says nothing about
`Authorization: Api-Key <key>`. Imported by `api.urls`, so the schema always has them.

Error answers are documented once, here: every view declares its statuses with
`error_responses()`, which gives each the body the exception handler writes
(`api.exceptions`: DRF's, plus 503 for a database outage).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from drf_spectacular.extensions import OpenApiAuthenticationExtension, OpenApiSerializerExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers
from rest_framework.utils.field_mapping import ClassLookupDict

# What any call may answer besides its own responses: every view authenticates and throttles,
# and any of them may lose its database connection.
COMMON_ERRORS = {
    401: "An unknown, malformed or revoked API key.",
    406: "The Accept header or `?format=` names no format this endpoint writes.",
    429: "Too many requests: retry after the Retry-After header's seconds.",
    503: "The database is unavailable right now: retry after the Retry-After header's seconds.",
}
# What a call with a body may answer when the body is past Django's upload limit (`api.exceptions`).
TOO_LARGE = {413: "The body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE: send a smaller one."}


class ErrorSerializer(serializers.Serializer):
    """The body of every error but a 400: DRF's `{"detail": ...}`."""

    detail = serializers.CharField(help_text="What went wrong, and what to do about it.")


class ValidationErrorSerializer(serializers.Serializer):
    """The body of a 400; its schema is `ValidationErrorScheme`'s (a serializer cannot say
    "any other key"), the shape of DRF's `ValidationError` and `ParseError`."""


class ValidationErrorScheme(OpenApiSerializerExtension):
    target_class = ValidationErrorSerializer

    def map_serializer(self, auto_schema: Any, direction: str) -> dict[str, Any]:
        messages = {"type": "array", "items": {"type": "string"}}
        return {
            "type": "object",
            "description": "Each bad field, by name, with its messages; a nested field's errors nest "
            "the same way (by key, or by position in a list). A body that cannot be read at all, "
            "or an action the object's state refuses, is explained in `detail` instead.",
            "properties": {
                "detail": {"type": "string"},
                "non_field_errors": {**messages, "description": "Problems of the input as a whole."},
            },
            "additionalProperties": {"anyOf": [messages, {"type": "object"}]},
        }


def error_responses(described: Mapping[int, str]) -> dict[int, OpenApiResponse]:
    """An operation's error answers, each with its body's schema: the statuses `described`
    (status -> when this operation answers it), and those any call may answer (401, 429, 503).

    A 400 lists what was wrong with the input; any other error explains itself in `detail`.
    """
    return {
        status: OpenApiResponse(
            ValidationErrorSerializer if status == 400 else ErrorSerializer, description=description
        )
        for status, description in sorted({**described, **COMMON_ERRORS}.items())
    }


def user_key_field(**kwargs: Any) -> serializers.Field:
    """A field of the type of the host user model's primary key (an integer, a UUID, text),
    so that the schema documents user ids as the API answers them. Call it when the schema is
    built (a serializer's `get_fields()`), not at import, to follow `AUTH_USER_MODEL`."""
    key = get_user_model()._meta.pk
    while key.is_relation:  # a user model that extends another: its key is the parent's
        key = key.target_field
    try:
        field_class = ClassLookupDict(serializers.ModelSerializer.serializer_field_mapping)[key]
    except KeyError:  # a custom field type: its value is written out as text
        field_class = serializers.CharField
    return field_class(**kwargs)


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "recommendations.api.authentication.ApiKeyAuthentication"
    name = "ApiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "`Api-Key <key>`. Keys are created and revoked in the admin, each with "
            "scopes: events:write, recommendations:read, audiences:read.",
        }


class CsrfSessionScheme(OpenApiAuthenticationExtension):
    target_class = "recommendations.api.authentication.CsrfSessionAuthentication"
    name = "Session"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "cookie",
            "name": settings.SESSION_COOKIE_NAME,
            "description": "The storefront's session (anonymous visitors too). Writes also need the "
            "csrftoken cookie's value in the X-CSRFToken header (or csrf_token in the body).",
        }
