"""`GET /api/search/?q=...`: personalised product search (see `recommendations.serving.search`)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema

from recommendations.api.recommendation_serializers import (
    RecommendationListSerializer,
    SearchParamsSerializer,
)
from recommendations.api.recommendations import RecommendationView
from recommendations.api.schema import error_responses
from recommendations.serving import search
from recommendations.serving.types import Audience, Options, RecommendationResult


@extend_schema(
    summary="Search products",
    description=(
        "Full-text and typo-tolerant keyword relevance, blended with semantic similarity and "
        "re-ranked by the visitor's taste when a model is active."
    ),
    parameters=[SearchParamsSerializer],
    responses={
        200: RecommendationListSerializer,
        **error_responses(
            {
                400: "Missing or too long `q`, or other bad parameters.",
                403: "Another user's search without permission, or an API key without recommendations:read.",
                404: "Unknown user.",
            }
        ),
    },
)
class SearchView(RecommendationView):
    params_serializer = SearchParamsSerializer

    def serve(self, audience: Audience, options: Options, params: dict[str, Any]) -> RecommendationResult:
        return search.search(params["q"], audience, options)
