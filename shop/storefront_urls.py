"""Storefront pages of the demo shop."""

from django.urls import path

from shop import views

app_name = "shop"

urlpatterns = [
    path("", views.home, name="home"),
    path("category/<slug:slug>/", views.category, name="category"),
    path("product/<slug:slug>/", views.product, name="product"),
    path("store/<slug:slug>/", views.store, name="store"),
]
