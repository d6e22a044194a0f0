"""JSON written by orjson for the hot read endpoints.

DRF's `JSONRenderer` encodes with the standard library; a recommendation list of 10-20
cards cost it about as much CPU as one of the request's queries. This renderer writes the
same compact UTF-8 JSON (DRF's defaults) through orjson. What orjson leaves to it (Decimal,
lazy strings, dates) goes through DRF's encoder, and indented output (`Accept:
application/json; indent=2`) through DRF's renderer itself.
"""

from __future__ import annotations

from typing import Any

import orjson
from rest_framework import renderers
from rest_framework.utils.encoders import JSONEncoder

_encoder = JSONEncoder()
# Dates go to DRF's encoder; integer keys (a list field's errors by index) become strings.
OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


class FastJSONRenderer(renderers.JSONRenderer):
    def render(
        self, data: Any, accepted_media_type: str | None = None, renderer_context: dict | None = None
    ) -> bytes:
        if data is None:
            return b""
        if self.get_indent(accepted_media_type or "", renderer_context or {}):
            return super().render(data, accepted_media_type, renderer_context)
        return orjson.dumps(data, default=_encoder.default, option=OPTIONS)
