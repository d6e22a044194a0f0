"""`GET /healthz`: for a load balancer's health check."""

from __future__ import annotations

from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache


@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """200 while this process can reach the database, else 503: a process that cannot serve a
    page leaves the balancer's pool until it can again."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError:  # what went wrong is in the logs, not on a public page
        return JsonResponse({"status": "unavailable"}, status=503)
    return JsonResponse({"status": "ok"})
