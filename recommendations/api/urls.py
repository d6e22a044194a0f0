"""URLs of the REST API; the host includes them under `api/`:

    path("api/", include("recommendations.api.urls")),
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from recommendations.api.events import EventBatchView

app_name = "recommendations_api"

urlpatterns = [
    path("events/", EventBatchView.as_view(), name="events"),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="recommendations_api:schema"), name="docs"),
]
