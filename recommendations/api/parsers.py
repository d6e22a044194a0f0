"""The request bodies the API reads: JSON, forms and multipart, as DRF's defaults.

The JSON parser answers a body nested too deeply with a 400. Python's json module recurses
once per level and raises RecursionError past the interpreter's limit (about a thousand:
a body of a few kilobytes), which DRF does not catch: a 500 from a re-ranking any browser
session may post.
"""

from __future__ import annotations

from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ParseError


class JSONParser(parsers.JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: dict | None = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError("JSON parse error - the body is nested too deeply; send flatter JSON.") from None


PARSERS = [JSONParser, parsers.FormParser, parsers.MultiPartParser]
