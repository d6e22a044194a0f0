"""Storefront views. Recommendation blocks are rendered by the app's template tags."""

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from shop.models import Category, Product, Store

PAGE_SIZE = 24


def _available_products():
    return Product.objects.filter(is_active=True).select_related("store", "category")


def home(request: HttpRequest) -> HttpResponse:
    products = _available_products()[:PAGE_SIZE]
    categories = Category.objects.filter(parent__isnull=True)
    return render(request, "shop/home.html", {"products": products, "categories": categories})


def category(request: HttpRequest, slug: str) -> HttpResponse:
    node = get_object_or_404(Category, slug=slug)
    products = _available_products().filter(category__in=node.descendants_and_self())
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "shop/category.html", {"category": node, "page": page})


def product(request: HttpRequest, slug: str) -> HttpResponse:
    item = get_object_or_404(_available_products(), slug=slug)
    return render(request, "shop/product.html", {"product": item})


def store(request: HttpRequest, slug: str) -> HttpResponse:
    seller = get_object_or_404(Store, slug=slug)
    products = _available_products().filter(store=seller)
    page = Paginator(products, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "shop/store.html", {"store": seller, "page": page})
