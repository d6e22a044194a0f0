"""Embeddings per model version, stored with pgvector.

The dimension belongs to the model version, so the columns are declared without one and
each version gets partial vector indexes (IVFFlat, HNSW) on `embedding::vector(d)` built
after its bulk load (`recommendations.vectors.indexes`). Queries cast the column the same
way so the planner uses that version's index.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from pgvector.django import VectorField

from recommendations.models.registry import ModelVersion


class VectorBase(models.Model):
    model_version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="+")
    embedding = VectorField()
    # Item bias of the two-tower score (score = user . item + bias); 0 for users.
    bias = models.FloatField(default=0.0)
    # When the content the vector was computed from was read (the writer's `as_of`): a product
    # saved after it has a stale vector, which `embedding.sync_all_products` recomputes.
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class ProductVector(VectorBase):
    product_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "product_id"], name="rec_product_vector_unique")
        ]

    def __str__(self) -> str:
        return f"product {self.product_id} @ v{self.model_version_id}"


class StoreVector(VectorBase):
    store_id = models.CharField(max_length=64)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "store_id"], name="rec_store_vector_unique")
        ]

    def __str__(self) -> str:
        return f"store {self.store_id} @ v{self.model_version_id}"


class UserVector(VectorBase):
    """A user's taste at training time; serving refreshes it from recent events on the fly."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["model_version", "user"], name="rec_user_vector_unique")
        ]

    def __str__(self) -> str:
        return f"user {self.user_id} @ v{self.model_version_id}"


class ListKind(models.TextChoices):
    SIMILAR = "similar", "Similar products (by product)"
    FOR_USER = "for_user", "Products for a user (by user)"


class PrecomputedList(models.Model):
    """A ranked list of products computed once per model version, best first: a product's
    nearest products, or a user's best-scoring ones (`recommendations.vectors.lists`).

    Serving reads one of these rows where it would otherwise search a vector index.
    """

    # The unique constraint's index starts with the version: no index of its own.
    model_version = models.ForeignKey(
        ModelVersion, on_delete=models.CASCADE, related_name="+", db_index=False
    )
    kind = models.CharField(max_length=16, choices=ListKind.choices)
    # The product's key, or the user's primary key, as a string.
    key = models.CharField(max_length=64)
    product_ids = ArrayField(models.CharField(max_length=64))
    scores = ArrayField(models.FloatField())

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model_version", "kind", "key"], name="rec_precomputed_list_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind} list of {self.key} @ v{self.model_version_id}"
