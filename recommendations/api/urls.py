"""URLs of the REST API; the host includes them under `api/` with
`path("api/", include("recommendations.api.urls"))`. The last pattern answers any other path
under the API's own first segments (`events`, `recommendations`, `campaigns`, ...) with a JSON
404 (`api.not_found`); other paths under the prefix are left to the host's URLs after this include.
"""

from django.urls import include, path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerSplitView
from rest_framework.routers import SimpleRouter

from recommendations.api import recommendations as rec_views
from recommendations.api import schema  # noqa: F401 - documents Api-Key and session auth in the schema
from recommendations.api.events import EventBatchView
from recommendations.api.marketing import (
    CampaignAudienceView,
    CampaignsForMeView,
    CampaignViewSet,
    ExperimentViewSet,
)
from recommendations.api.negotiation import FirstRendererNegotiation
from recommendations.api.not_found import not_found
from recommendations.api.search import SearchView

app_name = "recommendations_api"
PAGE_METHODS = ["get", "head"]

marketing_router = SimpleRouter()
marketing_router.register("campaigns", CampaignViewSet, basename="campaign")
marketing_router.register("experiments", ExperimentViewSet, basename="experiment")

# Product and store keys are any text (a SKU such as "AB/12" too): `path`, not `str`, so that a
# key holding a slash can be named.
urlpatterns = [
    path("events/", EventBatchView.as_view(), name="events"),
    # The schema negotiates as the other views do: `?format=xml` is a 406 naming its formats.
    path(
        "schema/",
        SpectacularAPIView.as_view(content_negotiation_class=FirstRendererNegotiation),
        name="schema",
    ),
    # Pages to read, GET only (the Swagger view answered OPTIONS with a 500: it picks its
    # template in get()). The split view serves its start-up script as a file: no inline
    # script, for a strict Content-Security-Policy.
    path(
        "docs/",
        SpectacularSwaggerSplitView.as_view(
            url_name="recommendations_api:schema", http_method_names=PAGE_METHODS
        ),
        name="docs",
    ),
    path(
        "redoc/",
        SpectacularRedocView.as_view(url_name="recommendations_api:schema", http_method_names=PAGE_METHODS),
        name="redoc",
    ),
    path("recommendations/for-you/", rec_views.ForYouView.as_view(), name="for-you"),
    path("recommendations/similar/<path:product_id>/", rec_views.SimilarView.as_view(), name="similar"),
    path(
        "recommendations/bought-together/<path:product_id>/",
        rec_views.BoughtTogetherView.as_view(),
        name="bought-together",
    ),
    path("recommendations/trending/", rec_views.TrendingView.as_view(), name="trending"),
    path("recommendations/new/", rec_views.NewArrivalsView.as_view(), name="new-arrivals"),
    path("recommendations/recently-viewed/", rec_views.RecentlyViewedView.as_view(), name="recently-viewed"),
    path("recommendations/buy-again/", rec_views.BuyAgainView.as_view(), name="buy-again"),
    path("recommendations/stores/", rec_views.StoresView.as_view(), name="stores"),
    path(
        "recommendations/similar-stores/<path:store_id>/",
        rec_views.SimilarStoresView.as_view(),
        name="similar-stores",
    ),
    path(
        "recommendations/store-products/<path:store_id>/",
        rec_views.StoreProductsView.as_view(),
        name="store-products",
    ),
    path("recommendations/rerank/", rec_views.RerankView.as_view(), name="rerank"),
    path("search/", SearchView.as_view(), name="search"),
    # Marketing: the two fixed paths come before the router's `campaigns/<pk>/`.
    path("campaigns/for-me/", CampaignsForMeView.as_view(), name="campaigns-for-me"),
    path("campaigns/<int:pk>/audience/", CampaignAudienceView.as_view(), name="campaign-audience"),
    path("", include(marketing_router.urls)),
]
# Last: any other path under the API's own first segments, with or without its slash.
_segments = {str(pattern.pattern).split("/")[0] for pattern in urlpatterns} - {""}
_segments |= {prefix for prefix, _viewset, _basename in marketing_router.registry}
urlpatterns.append(re_path(rf"^(?:{'|'.join(sorted(_segments))})(?:/.*)?$", not_found, name="not-found"))
