"""The answer to a path under the API's prefix that names no endpoint: a JSON 404.

Django's own 404 is an HTML page, which a client reading JSON cannot parse. A path without its
trailing slash was worse: `APPEND_SLASH` redirected it (a 301, which clients follow with a GET,
dropping a POST's body) or, under DEBUG, raised a RuntimeError for a POST (a 500). This view is
the last of the API's URL patterns, so every such path resolves to it, which `APPEND_SLASH`
then leaves alone; a path that only lacks its slash is told the one it meant.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.urls import Resolver404, resolve, reverse
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt  # it changes nothing, and a POST to a mistyped path deserves its 404, not a CSRF 403
def not_found(request: HttpRequest) -> JsonResponse:
    """404 with `{"detail": ...}` naming the path, and the endpoint meant when the slash is missing."""
    path = request.path
    if not path.endswith("/") and _is_endpoint(request, f"{request.path_info}/"):
        hint = f"API paths end in /: did you mean {path}/?"
    else:
        hint = f"The API's endpoints are listed at {reverse('recommendations_api:docs')}."
    return JsonResponse({"detail": f"Not found: {request.method} {path}. {hint}"}, status=404)


def _is_endpoint(request: HttpRequest, path_info: str) -> bool:
    try:
        match = resolve(path_info, getattr(request, "urlconf", None))
    except Resolver404:
        return False
    return match.func is not not_found
