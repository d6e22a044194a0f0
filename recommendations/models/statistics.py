"""Aggregates of behaviour events that serving reads instead of scanning events per request.

Rebuilt periodically by `recommendations.serving.statistics.refresh_statistics()`; they are
what every surface answers from when no trained model is active.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models


class ProductPopularity(models.Model):
    """Time-decayed popularity of one product, overall and within its categories."""

    product_id = models.CharField(max_length=64, unique=True)
    # Category names from the root down; per-category trending filters on them.
    categories = ArrayField(models.CharField(max_length=200), default=list, blank=True)
    store_id = models.CharField(max_length=64, blank=True)
    # Weighted events with a short half-life (TRENDING_HALF_LIFE_DAYS) ...
    trending_score = models.FloatField(default=0.0)
    # ... and with the long one used in training (DECAY_HALF_LIFE_DAYS).
    popular_score = models.FloatField(default=0.0)
    buyers = models.PositiveIntegerField(default=0)
    # Share of buyers who bought it more than once, and the median days between purchases.
    repeat_rate = models.FloatField(default=0.0)
    repurchase_days = models.FloatField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "product popularity"
        indexes = [
            models.Index(fields=["-trending_score"], name="rec_pop_trending"),
            models.Index(fields=["-popular_score"], name="rec_pop_popular"),
            models.Index(fields=["store_id", "-popular_score"], name="rec_pop_store"),
            GinIndex(fields=["categories"], name="rec_pop_categories"),
        ]

    def __str__(self) -> str:
        return f"product {self.product_id}: trending {self.trending_score:.2f}"


class PairKind(models.TextChoices):
    BOUGHT = "bought", "Bought together"
    VIEWED = "viewed", "Viewed together"


class ProductPair(models.Model):
    """How strongly `other_id` goes with `product_id` (kept for the top pairs per product)."""

    kind = models.CharField(max_length=8, choices=PairKind.choices)
    product_id = models.CharField(max_length=64)
    other_id = models.CharField(max_length=64)
    # Shoppers who had both, and that count normalised by the two products' popularity.
    count = models.PositiveIntegerField(default=0)
    score = models.FloatField(default=0.0)

    class Meta:
        indexes = [models.Index(fields=["kind", "product_id", "-score"], name="rec_pair_lookup")]

    def __str__(self) -> str:
        return f"{self.kind}: {self.product_id} -> {self.other_id} ({self.score:.3f})"
