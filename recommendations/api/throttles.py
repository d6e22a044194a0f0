"""Request-rate limits: per API key, per signed-in user, per anonymous client address.

Rates come from `RECOMMENDATIONS["API_THROTTLE_RATES"]` and are counted in Django's cache.
"""

from __future__ import annotations

from typing import Any

from rest_framework.request import Request
from rest_framework.throttling import SimpleRateThrottle

from recommendations.conf import rec_settings
from recommendations.models.api_keys import ApiKey


class ApiRateThrottle(SimpleRateThrottle):
    scope = "recommendations"

    def __init__(self) -> None:
        # The rate depends on who is asking, so it is chosen per request in allow_request().
        self.kind = self.ident = ""

    def allow_request(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            self.kind, self.ident = "api_key", str(request.auth.pk)
        elif request.user is not None and request.user.is_authenticated:
            self.kind, self.ident = "user", str(request.user.pk)
        else:
            self.kind, self.ident = "anonymous", self.get_ident(request)
        self.rate = rec_settings.API_THROTTLE_RATES[self.kind]
        self.num_requests, self.duration = self.parse_rate(self.rate)
        return super().allow_request(request, view)

    def get_cache_key(self, request: Request, view: Any) -> str:
        return f"throttle_{self.scope}_{self.kind}_{self.ident}"
