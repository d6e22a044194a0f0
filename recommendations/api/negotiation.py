"""Content negotiation of the API's views: the common case answered without parsing the Accept
header, and a format no renderer writes refused with a 406 that names those it does.

Scripts, `fetch()` and HTTP libraries send `Accept: */*` (or nothing, or the JSON type
itself); DRF's negotiation builds the request's headers and parses and ranks their media
types against each renderer on every request: 39 us, against 12 us here (docs/benchmarks.md,
eighth session). Those headers always get the first renderer, as DRF would choose it;
anything else (a browser asking for HTML, `?format=api`, parameters such as `indent=2`) goes
through DRF's negotiation.

DRF answers `?format=xml` with a 404, "Not found.", of an endpoint that exists, and an Accept
header it cannot satisfy with a 406 that does not say what it could send.
"""

from __future__ import annotations

from collections.abc import Sequence

from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request

ACCEPTS_ANYTHING = frozenset({"", "*/*"})


class FirstRendererNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Sequence[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        first = renderers[0]
        accept = request.META.get("HTTP_ACCEPT", "").strip()
        plain = not format_suffix and self.settings.URL_FORMAT_OVERRIDE not in request.query_params
        if plain and (accept in ACCEPTS_ANYTHING or accept == first.media_type):
            return first, first.media_type
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except exceptions.NotAcceptable as refused:
            if refused.available_renderers is None:  # `filter_renderers`' own, which says it all
                raise
            types = ", ".join(dict.fromkeys(renderer.media_type for renderer in refused.available_renderers))
            raise exceptions.NotAcceptable(
                f"The Accept header names no type this endpoint writes; accept one of {types} (or */*)."
            ) from None

    def filter_renderers(self, renderers: Sequence[BaseRenderer], format: str) -> list[BaseRenderer]:
        matching = [renderer for renderer in renderers if renderer.format == format]
        if not matching:
            formats = ", ".join(dict.fromkeys(renderer.format for renderer in renderers))
            raise exceptions.NotAcceptable(f"No format {format!r} here: use one of {formats}.")
        return matching
