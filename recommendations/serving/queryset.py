"""Recommendations as QuerySets of the host's models, for host code.

    class Product(models.Model):
        ...
        recommendations = RecommendationManager()

    Product.recommendations.for_user(request.user).filter(price__lt=50)

Every method returns a lazy QuerySet in recommendation order (annotated with
`recommendation_rank`), so any further filter, slice or `select_related` applies.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Func, TextField, Value
from django.db.models.functions import Cast

from recommendations.adapters import get_product_model
from recommendations.serving.types import Audience, Options


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


class RecommendationManager(models.Manager):
    """A manager of product recommendations; attach it to the host's product model."""

    def _ordered(self, result) -> models.QuerySet:
        return ordered_queryset(self.model, result.ids)

    def for_user(
        self, user: Any = None, *, session_id: str = "", limit: int | None = None
    ) -> models.QuerySet:
        from recommendations.serving import products

        return self._ordered(products.for_you(Audience(user, session_id), Options(limit=limit)))

    def similar_to(self, product: models.Model, *, limit: int | None = None) -> models.QuerySet:
        from recommendations.serving import products

        return self._ordered(products.similar(str(product.pk), Audience(), Options(limit=limit)))

    def bought_with(self, product: models.Model, *, limit: int | None = None) -> models.QuerySet:
        from recommendations.serving import products

        return self._ordered(products.bought_together(str(product.pk), Audience(), Options(limit=limit)))

    def trending(self, *, category: str | None = None, limit: int | None = None) -> models.QuerySet:
        from recommendations.serving import products

        return self._ordered(products.trending(Audience(), Options(limit=limit, category=category)))

    def search(self, query: str, user: Any = None, *, limit: int | None = None) -> models.QuerySet:
        from recommendations.serving import search

        return self._ordered(search.search(query, Audience(user), Options(limit=limit)))

    def rerank(self, products: Iterable[Any], user: Any = None, *, session_id: str = "") -> models.QuerySet:
        """`products` as objects or ids, most relevant to the visitor first."""
        from recommendations.serving import products as services

        ids = [str(getattr(p, "pk", p)) for p in products]
        return self._ordered(services.rerank(ids, Audience(user, session_id), Options()))


def for_user(user: Any = None, *, session_id: str = "", limit: int | None = None) -> models.QuerySet:
    """ "Recommended for you" as a QuerySet of the host's product model, without a manager."""
    manager = RecommendationManager()
    manager.model = get_product_model()
    return manager.for_user(user, session_id=session_id, limit=limit)
