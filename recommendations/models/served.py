"""What was recommended to whom: one row per served list, so that clicks and purchases
carrying its `recommendation_id` can be joined back to the list, its position and source."""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models


class ServedRecommendation(models.Model):
    """One list shown to a visitor (a block on a page, an API answer).

    Every item of the list carries the list's id as its `recommendation_id`; an event that
    comes back with that id and a product id gives the position through `product_ids`.
    Rows are short-lived (`RECOMMENDATIONS["SERVED_RETENTION_DAYS"]`) and written one per list,
    never per item, in batches by a thread of each web process (`serving.attribution`), to
    keep the serving hot path cheap.
    """

    id = models.CharField(primary_key=True, max_length=32)
    kind = models.CharField(max_length=32)
    source = models.CharField(max_length=40)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    session_id = models.CharField(max_length=64, blank=True)
    model_version_id = models.PositiveIntegerField(null=True, blank=True)
    product_ids = ArrayField(models.CharField(max_length=64), default=list)
    scores = ArrayField(models.FloatField(), default=list)
    # Request parameters (seed product, query, category) and per-item sources.
    context = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    def __str__(self) -> str:
        return f"{self.kind} list {self.id} ({len(self.product_ids)} items)"
