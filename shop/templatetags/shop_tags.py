"""Small helpers for the storefront templates: pictures, stars, the cart badge, the menu."""

from __future__ import annotations

from django import template
from django.db.models import QuerySet
from django.http import QueryDict
from django.urls import reverse

from recommendations.events.tracking import is_bot
from recommendations.serving.types import Recommendation
from shop import placeholders
from shop.cart import Cart
from shop.models import Category, Product, Store
from shop.ratings import attach_ratings

register = template.Library()


@register.simple_tag(takes_context=True)
def product_link(context: template.Context, product: Product, recommendation: Recommendation | str) -> str:
    """The product's address, with the list it is shown in (`?rec=`, for the click's credit).
    Not for a crawler: a new id on every visit made each product page a new address to it.
    (A card outside any list has none: the template gives "".)"""
    request = context.get("request")
    if not recommendation or (request is not None and is_bot(request)):
        return product.get_absolute_url()
    return f"{product.get_absolute_url()}?rec={recommendation.recommendation_id}"


@register.simple_tag(takes_context=True)
def canonical_url(context: template.Context, *keep: str) -> str:
    """This page's address for search engines: its path with only the parameters in `keep`
    (a page number, a query), without `?rec=`, a sort or "show more"."""
    request = context["request"]
    params = QueryDict(mutable=True)
    for name in keep:
        if request.GET.get(name):
            params[name] = request.GET[name]
    query = params.urlencode()
    return request.build_absolute_uri(f"{request.path}?{query}" if query else request.path)


@register.filter
def product_image(product: Product) -> str:
    """The product's own picture when it has one, else its generated placeholder."""
    return product.image_url or reverse("shop:product_image", args=[product.pk])


@register.filter
def placeholder_image(product: Product) -> str:
    """The generated picture, used when the product's own picture cannot be loaded."""
    return reverse("shop:product_image", args=[product.pk])


@register.filter
def store_logo(store: Store) -> str:
    return reverse("shop:store_logo", args=[store.pk])


@register.inclusion_tag("shop/_stars.html")
def stars(rating: float | None) -> dict[str, str]:
    """Five stars filled to an average rating (1-5): the filled ones are clipped by an inner
    <svg> as wide as the rating. SVG, as its widths are attributes: the Content-Security-Policy
    (shop.csp) refuses style attributes."""
    return {"width": f"{min(max(float(rating or 0), 0), 5) * 20:.0f}%"}


@register.filter
def category_colors(category: Category) -> tuple[str, str]:
    """The two colours of the category's tile gradient; products of a category share its hue
    (see placeholders)."""
    hue = placeholders.hue_for(category.names[0])
    return f"hsl({hue}, 50%, 42%)", f"hsl({(hue + 30) % 360}, 55%, 32%)"


@register.simple_tag
def ratings_for(items: list[dict]) -> str:
    """Load the ratings of a recommendation block's products in one query (renders nothing)."""
    attach_ratings(item["object"] for item in items)
    return ""


@register.simple_tag
def product_rating(product: Product) -> dict:
    """`{"avg", "count"}` of a product's ratings (listings and blocks load them beforehand)."""
    attach_ratings([product])
    return {"avg": product.rating, "count": product.rating_count}


@register.simple_tag(takes_context=True)
def cart_count(context: template.Context) -> int:
    request = context.get("request")
    return len(Cart(request.session)) if request is not None and hasattr(request, "session") else 0


@register.simple_tag
def top_categories() -> QuerySet[Category]:
    return Category.objects.filter(parent__isnull=True).order_by("name")
