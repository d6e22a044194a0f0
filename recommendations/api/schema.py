"""How the OpenAPI schema describes the API's two ways in (drf-spectacular extensions).

drf-spectacular looks an authentication class up by its dotted path; without these it warns
on every operation (and `check --deploy` is not clean) and the schema says nothing about
`Authorization: Api-Key <key>`. Imported by `api.urls`, so the schema always has them.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse

# What any call may answer besides its own responses: every view authenticates and throttles.
AUTH_AND_RATE_ERRORS = {
    401: OpenApiResponse(description="An unknown, malformed or revoked API key."),
    429: OpenApiResponse(description="Too many requests: retry after the Retry-After header's seconds."),
}


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
