"""`/api/recommendations/...`: every recommendation type as a read-only endpoint.

Each view is a thin door into one service function (`recommendations.serving`): it
validates the query parameters, works out whose recommendations are asked for, calls the
service and serialises the answer. Who may ask for whom:
- a visitor gets their own (signed-in user, else their anonymous session);
- `?user=<id>` / `?session_id=...` for someone else needs staff with the admin's "preview as
  user" permission (the page that shows the same), or an API key with the
  `recommendations:read` scope. API keys without that scope are refused everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, renderers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from recommendations.api.audience import resolve_audience
from recommendations.api.authentication import ApiKeyAuthentication, CsrfSessionAuthentication
from recommendations.api.negotiation import FirstRendererNegotiation
from recommendations.api.parsers import PARSERS
from recommendations.api.permissions import CanReadRecommendations
from recommendations.api.recommendation_serializers import (
    CategoryListParamsSerializer,
    ListParamsSerializer,
    RecommendationListSerializer,
    RerankSerializer,
    StoreListSerializer,
    result_payload,
)
from recommendations.api.renderers import FastJSONRenderer
from recommendations.api.schema import TOO_LARGE, error_responses
from recommendations.api.throttles import ApiRateThrottle
from recommendations.serving import products, stores
from recommendations.serving.errors import InvalidParameters, NotFound, excluded_keys
from recommendations.serving.types import Audience, Options, RecommendationResult


def _schema(
    summary: str,
    *,
    serializer: type = RecommendationListSerializer,
    params: type[ListParamsSerializer] = ListParamsSerializer,
    **extra: Any,
) -> Callable:
    return extend_schema(
        summary=summary,
        parameters=[params],
        responses={
            200: serializer,
            **error_responses(
                {
                    400: "Bad parameters, each listed with what to send.",
                    403: "Another user's recommendations without permission, or an API key "
                    "without recommendations:read.",
                    404: "Unknown product, store or user.",
                }
            ),
        },
        **extra,
    )


class RecommendationView(APIView):
    """Shared request handling; subclasses name their `service` (and its URL argument, if any)."""

    authentication_classes = [ApiKeyAuthentication, CsrfSessionAuthentication]
    permission_classes = [CanReadRecommendations]
    throttle_classes = [ApiRateThrottle]
    renderer_classes = [FastJSONRenderer, renderers.BrowsableAPIRenderer]
    parser_classes = PARSERS
    content_negotiation_class = FirstRendererNegotiation
    params_serializer: ClassVar[type[ListParamsSerializer]] = ListParamsSerializer

    # The service that answers: called with the URL argument named by `url_argument` (a product
    # or a store id) if any, then the visitor and the options. Views whose answer needs the
    # request's parameters override `serve` instead.
    service: ClassVar[Callable[..., RecommendationResult]]
    url_argument: ClassVar[str | None] = None
    # Whether `?exclude=` names stores (the store lists) rather than products.
    excludes_stores: ClassVar[bool] = False

    def serve(
        self, audience: Audience, options: Options, params: dict[str, Any], **kwargs: Any
    ) -> RecommendationResult:
        seed = () if self.url_argument is None else (kwargs[self.url_argument],)
        return self.service(*seed, audience, options)

    def answer(self, request: Request, data: Any, **kwargs: Any) -> Response:
        params = self.params_serializer.parse(data)
        options = Options(
            limit=params.get("limit"),
            exclude=excluded_keys(params.get("exclude", ()), stores=self.excludes_stores),
            explain=params["explain"],
            category=params.get("category"),
        )
        audience = resolve_audience(request, params)
        try:
            result: RecommendationResult = self.serve(audience, options, params, **kwargs)
        except NotFound as exc:
            raise exceptions.NotFound(str(exc)) from exc
        except InvalidParameters as exc:
            raise exceptions.ValidationError(exc.errors) from exc
        return Response(result_payload(result, options.explain))

    def get(self, request: Request, **kwargs: Any) -> Response:
        return self.answer(request, request.query_params, **kwargs)


@_schema("Recommended for you", description="The visitor's taste, updated by every event, else trending.")
class ForYouView(RecommendationView):
    service = staticmethod(products.for_you)


@_schema("Products similar to a product")
class SimilarView(RecommendationView):
    service = staticmethod(products.similar)
    url_argument = "product_id"


@_schema("Frequently bought together with a product")
class BoughtTogetherView(RecommendationView):
    service = staticmethod(products.bought_together)
    url_argument = "product_id"


@_schema(
    "Trending products",
    description="Time-decayed popularity, overall or in `category`.",
    params=CategoryListParamsSerializer,
)
class TrendingView(RecommendationView):
    params_serializer = CategoryListParamsSerializer
    service = staticmethod(products.trending)


@_schema(
    "New arrivals",
    description="The newest products, overall or in `category`.",
    params=CategoryListParamsSerializer,
)
class NewArrivalsView(RecommendationView):
    params_serializer = CategoryListParamsSerializer
    service = staticmethod(products.new_arrivals)


@_schema("Recently viewed")
class RecentlyViewedView(RecommendationView):
    service = staticmethod(products.recently_viewed)


@_schema("Buy it again", description="Replenishable products the visitor bought, those due first.")
class BuyAgainView(RecommendationView):
    service = staticmethod(products.buy_again)


@_schema("Top products of a store for the visitor")
class StoreProductsView(RecommendationView):
    service = staticmethod(products.store_products)
    url_argument = "store_id"


@_schema("Stores for the visitor", serializer=StoreListSerializer)
class StoresView(RecommendationView):
    service = staticmethod(stores.stores_for_user)
    excludes_stores = True


@_schema("Stores similar to a store", serializer=StoreListSerializer)
class SimilarStoresView(RecommendationView):
    service = staticmethod(stores.similar_stores)
    url_argument = "store_id"
    excludes_stores = True


class RerankView(RecommendationView):
    """Re-rank the host's own list (a category page) for the visitor."""

    params_serializer = RerankSerializer
    http_method_names = ["post", "options"]

    def serve(self, audience: Audience, options: Options, params: dict[str, Any]) -> RecommendationResult:
        return products.rerank(params["product_ids"], audience, options)

    @extend_schema(
        summary="Re-rank products for the visitor",
        description=(
            "The given products, most likely wanted first. Those not shown now (inactive or out of "
            "stock, as in every list) are left out; an id that names no product is a 404."
        ),
        request=RerankSerializer,
        responses={
            200: RecommendationListSerializer,
            **error_responses(
                {
                    400: "Bad body.",
                    403: "Another user's ranking without permission, or an API key without "
                    "recommendations:read.",
                    404: "Unknown product ids (named in `detail`) or user.",
                    **TOO_LARGE,
                    415: "The body is not JSON or a form: send Content-Type: application/json.",
                }
            ),
        },
    )
    def post(self, request: Request) -> Response:
        return self.answer(request, request.data)
