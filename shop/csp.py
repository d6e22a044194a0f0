"""The shop's Content-Security-Policy, sent with every response.

Scripts and styles only from the shop's own files: no inline script, event handler or style
attribute runs, so markup slipped into a page cannot act. Pictures may come from any HTTPS
host (imported catalogues link theirs). Django 5.2 has no CSP of its own (6.0 has).

The policy is `settings.CONTENT_SECURITY_POLICY`, a dict of directives and their sources;
`CONTENT_SECURITY_POLICY_PATHS` replaces some directives under a path prefix, for pages that
need more (the admin's inline styles, the API documentation's viewers).
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


def policy_for(path: str) -> str:
    """The header's value for a page at `path`."""
    paths = settings.CONTENT_SECURITY_POLICY_PATHS.items()
    changes = next((changes for prefix, changes in paths if path.startswith(prefix)), {})
    directives = {**settings.CONTENT_SECURITY_POLICY, **changes}
    return "; ".join(f"{name} {sources}" for name, sources in directives.items())


class ContentSecurityPolicyMiddleware:
    """Adds the policy for the request's path to every response that has none: a view that
    sets its own (a page embedding a payment provider's frame, say) keeps it."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if HEADER not in response:
            response[HEADER] = policy_for(request.path_info)
        return response
