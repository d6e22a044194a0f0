"""Pages, not only the API, answer a database outage with 503 and retry advice.

The API has its own exception handler (`recommendations.api.exceptions`); this middleware
covers everything else, including failures after the view such as saving the session.
Put it first in MIDDLEWARE so it wraps the session middleware::

    MIDDLEWARE = ["recommendations.middleware.DatabaseUnavailableMiddleware", ...]

Django turns an exception into a finished 500 response at each middleware (it wraps every
one in `convert_exception_to_response`), so no exception ever reaches this middleware's
`__call__`. A view's error arrives in `process_exception`; an inner middleware's (the session
saved after the view) is noted on the request as Django reports it (`got_request_exception`),
and its 500 is replaced here.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from typing import Any

from django.core.signals import got_request_exception
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse

from recommendations.api.exceptions import RETRY_AFTER_SECONDS, TRANSIENT_ERRORS

logger = logging.getLogger(__name__)

PAGE = (
    "<!doctype html><title>Back in a moment</title>"
    "<h1>We'll be back in a moment</h1>"
    f"<p>The shop cannot reach its database right now. Please retry in {RETRY_AFTER_SECONDS} seconds.</p>"
)
# Where `got_request_exception` leaves a transient database error on the request.
OUTAGE_ATTRIBUTE = "_database_outage"


class DatabaseUnavailableMiddleware:
    """Turn a lost database connection into 503 + Retry-After instead of a 500."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        outage = getattr(request, OUTAGE_ATTRIBUTE, None)
        if outage is not None and response.status_code == 500:
            return unavailable(request, outage)
        return response

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        """A view's (or its template's) lost connection: the 503 page; anything else: Django's 500."""
        if isinstance(exception, TRANSIENT_ERRORS):
            return unavailable(request, exception)
        return None


def unavailable(request: HttpRequest, exc: BaseException) -> HttpResponse:
    """The 503 page with Retry-After, logged as one warning line."""
    reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    logger.warning("Database unavailable for %s: %s", request.path, reason)
    response = HttpResponse(PAGE, status=503)
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@receiver(got_request_exception)
def note_database_outage(sender: Any, request: HttpRequest | None = None, **kwargs: Any) -> None:
    """Sent while Django turns an exception into a 500, with the exception being handled."""
    exc = sys.exc_info()[1]
    if request is not None and isinstance(exc, TRANSIENT_ERRORS):
        setattr(request, OUTAGE_ATTRIBUTE, exc)
