"""Pages, not only the API, answer a database outage with 503 and retry advice.

The API has its own exception handler (`recommendations.api.exceptions`); this middleware
covers everything else, including failures after the view such as saving the session.
Put it first in MIDDLEWARE so it wraps the session middleware::

    MIDDLEWARE = ["recommendations.middleware.DatabaseUnavailableMiddleware", ...]
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse

from recommendations.api.exceptions import RETRY_AFTER_SECONDS, TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

PAGE = (
    "<!doctype html><title>Back in a moment</title>"
    "<h1>We'll be back in a moment</h1>"
    f"<p>The shop cannot reach its database right now. Please retry in {RETRY_AFTER_SECONDS} seconds.</p>"
)


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection into 503 + Retry-After instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        except TRANSIENT_ERRORS as exc:
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            logger.warning("Database unavailable for %s: %s", request.path, reason)
            response = HttpResponse(PAGE, status=503)
            response["Retry-After"] = str(RETRY_AFTER_SECONDS)
            return response
