"""URLs of the demo shop: storefront, admin, and the recommendations app's API."""

from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/", include("recommendations.api.urls")),
    path("", include("shop.storefront_urls")),
]
