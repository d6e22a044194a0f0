"""Recommendations as QuerySets of the host's models, for host code.

    class Product(models.Model):
        ...
        objects = models.Manager()  # first: the first manager declared is the default one
        recommendations = RecommendationManager()

    Product.recommendations.for_user(request.user).filter(price__lt=50)
    Product.recommendations.similar_to(product, limit=4)
    Product.recommendations.bought_with(product)
    Product.recommendations.trending(category="Hair")
    Product.recommendations.search("argan oil", request.user)
    Product.recommendations.rerank(products, request.user)

Every method returns a lazy QuerySet in recommendation order (annotated with
`recommendation_rank`), so any further filter, slice or `select_related` applies.
The lists are the same as the template tags' and the API's, business rules included.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import ModuleType
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Func, TextField, Value
from django.db.models.functions import Cast

from recommendations.adapters import get_product_model, key_of
from recommendations.serving.types import Audience, Options, RecommendationResult


class ArrayPosition(Func):
    function = "array_position"
    output_field = models.IntegerField()


def ordered_queryset(model: type[models.Model], ids: Iterable[str]) -> models.QuerySet:
    """Objects of `model` with these ids, in this order (one query, any primary key type)."""
    keys = list(ids)
    rank = ArrayPosition(
        Value(keys, output_field=ArrayField(TextField())), Cast("pk", output_field=TextField())
    )
    return (
        model._default_manager.filter(pk__in=keys)
        .annotate(recommendation_rank=rank)
        .order_by("recommendation_rank")
    )


def _services() -> ModuleType:
    # Imported on use: the host's models.py imports this module while the app registry is
    # still loading, before the services' models may be imported.
    from recommendations.serving import products

    return products


class RecommendationManager(models.Manager):
    """A manager of product recommendations; attach it to the host's product model."""

    def _ordered(self, result: RecommendationResult) -> models.QuerySet:
        return ordered_queryset(self.model, result.ids)

    def for_user(
        self, user: Any = None, *, session_id: str = "", limit: int | None = None
    ) -> models.QuerySet:
        """ "Recommended for you": a signed-in user, or an anonymous visitor's engine session."""
        return self._ordered(_services().for_you(Audience(user, session_id), Options(limit=limit)))

    def similar_to(self, product: Any, *, limit: int | None = None) -> models.QuerySet:
        """Products like `product` (an object or its primary key, as the template tags take)."""
        return self._ordered(_services().similar(key_of(product), Audience(), Options(limit=limit)))

    def bought_with(self, product: Any, *, limit: int | None = None) -> models.QuerySet:
        """Frequently bought together with `product`, an object or its primary key (then
        viewed together, then like it)."""
        return self._ordered(_services().bought_together(key_of(product), Audience(), Options(limit=limit)))

    def trending(self, *, category: str | None = None, limit: int | None = None) -> models.QuerySet:
        """Trending now, overall or in the category of this name."""
        return self._ordered(_services().trending(Audience(), Options(limit=limit, category=category)))

    def search(
        self, query: str, user: Any = None, *, session_id: str = "", limit: int | None = None
    ) -> models.QuerySet:
        """Products for `query`, personalised for the visitor."""
        from recommendations.serving import search

        return self._ordered(search.search(query, Audience(user, session_id), Options(limit=limit)))

    def rerank(self, products: Iterable[Any], user: Any = None, *, session_id: str = "") -> models.QuerySet:
        """`products` as objects or ids, most relevant to the visitor first."""
        ids = [key_of(p) for p in products]
        return self._ordered(_services().rerank(ids, Audience(user, session_id), Options()))


def for_user(user: Any = None, *, session_id: str = "", limit: int | None = None) -> models.QuerySet:
    """ "Recommended for you" as a QuerySet of the host's product model, without a manager."""
    manager = RecommendationManager()
    manager.model = get_product_model()
    return manager.for_user(user, session_id=session_id, limit=limit)
