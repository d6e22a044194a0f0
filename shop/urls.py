"""URLs of the demo shop: storefront, admin, and the recommendations app's API."""

from django.contrib import admin
from django.urls import include, path

from shop.health import health

urlpatterns = [
    path("healthz", health, name="health"),
    path("admin/", admin.site.urls),
    path("api/", include("recommendations.api.urls")),
    path("", include("shop.storefront_urls")),
]
