"""The API's exception handler: a database outage is a 503 with retry advice, not a 500, a
body past Django's upload limit a JSON 413, and a 405 or 415 says what to send instead.

When PostgreSQL restarts or a connection is cut, Django raises `OperationalError` or
`InterfaceError`. Those say "try again shortly", not "the server is broken", so clients
(the beacon, a server sending events) get 503 with a `Retry-After` header and can resend:
event ids make the retry idempotent. Django reconnects on the next request by itself
(`CONN_HEALTH_CHECKS`), so the app recovers without a restart. The host enables it with::

    REST_FRAMEWORK = {"EXCEPTION_HANDLER": "recommendations.api.exceptions.exception_handler"}

Django refuses a body larger than `DATA_UPLOAD_MAX_MEMORY_SIZE`, and a query string or form
of more than `DATA_UPLOAD_MAX_NUMBER_FIELDS` fields, when a view reads it, with exceptions
that DRF does not handle: Django answered them with its HTML 400 page, which a client reading
JSON cannot parse and which does not say what was too large.

DRF's answers to a method or a body type a view does not take name what was wrong, not what
to send; the handler adds the methods (the `Allow` header's, but in the message a person
reads) and the body types the view parses.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent
from django.db import InterfaceError, OperationalError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5
# Django's wrappers, and psycopg's own for the bulk paths that use the raw connection (COPY,
# binary INSERT ... unnest): a lost connection, a server shutting down, a cancelled query.
TRANSIENT_ERRORS = (OperationalError, InterfaceError, psycopg.OperationalError, psycopg.InterfaceError)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF's handler, plus 503 + Retry-After for lost connections and other transient database
    errors, and `{"detail": ...}` for what Django's upload limits refuse."""
    if isinstance(exc, RequestDataTooBig):
        return Response(
            {
                "detail": f"The body is larger than the {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes "
                "this server accepts (DATA_UPLOAD_MAX_MEMORY_SIZE); send a smaller one."
            },
            status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
        )
    if isinstance(exc, TooManyFieldsSent):
        return Response(
            {
                "detail": f"More than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} parameters or form fields "
                "(DATA_UPLOAD_MAX_NUMBER_FIELDS); send fewer."
            },
            status=status.HTTP_400_BAD_REQUEST,
        )
    if isinstance(exc, TRANSIENT_ERRORS):
        # Django drops the broken connection when the request ends (`close_old_connections`).
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        logger.warning("Database unavailable in %s: %s", type(context.get("view")).__name__, reason)
        return Response(
            {"detail": f"The database is unavailable right now. Retry in {RETRY_AFTER_SECONDS} seconds."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    return drf_exception_handler(_with_advice(exc, context), context)


def _with_advice(exc: Exception, context: dict[str, Any]) -> Exception:
    """A 405 or 415 that says what the view takes; any other exception as it is."""
    view, request = context.get("view"), context.get("request")
    if view is None or request is None:
        return exc
    if isinstance(exc, exceptions.MethodNotAllowed):
        methods = " or ".join(m for m in view.allowed_methods if m not in {"HEAD", "OPTIONS"})
        return exceptions.MethodNotAllowed(
            request.method, f'Method "{request.method}" not allowed here: use {methods}.'
        )
    if isinstance(exc, exceptions.UnsupportedMediaType):
        types = " or ".join(parser.media_type for parser in view.get_parsers())
        return exceptions.UnsupportedMediaType(
            request.content_type, f"{exc.detail} Send Content-Type: {types}."
        )
    return exc
