"""The model registry: every trained model is a `ModelVersion`; at most one is active."""

from __future__ import annotations

from collections.abc import Mapping

from django.db import models
from django.db.models import Q


class ModelStatus(models.TextChoices):
    TRAINING = "training", "Training"
    READY = "ready", "Ready"
    ACTIVE = "active", "Active"
    FAILED = "failed", "Failed"
    RETIRED = "retired", "Retired"


def format_metric(metrics: Mapping[str, object] | None, name: str) -> str:
    """One metric to four decimals, or "—" when it was not evaluated (too few shoppers with
    enough history, or an older version), for the admin and `activate_model --list` alike."""
    value = (metrics or {}).get(name)
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


class ModelVersionQuerySet(models.QuerySet):
    def previous(self) -> ModelVersion | None:
        """The most recently active version that is not active now (the rollback target)."""
        return (
            self.filter(status=ModelStatus.READY, activated_at__isnull=False)
            .order_by("-activated_at")
            .first()
        )


class ModelVersion(models.Model):
    """A trained model, its metrics and its stored artifact.

    Serving reads vectors of the one `active` version. Activation is a single transaction
    (see `recommendations.vectors.activation`), so readers see the old version until the new
    one is complete; the previously active version is kept `ready` for rollback.
    """

    algorithm = models.CharField(max_length=40, default="two_tower")
    status = models.CharField(
        max_length=12, choices=ModelStatus.choices, default=ModelStatus.TRAINING, db_index=True
    )
    config = models.JSONField(default=dict, blank=True)
    # The times of the oldest and newest event trained on: the data the model saw, which for
    # imported history may end years before the run (`created_at`). Empty on versions trained
    # before this was recorded (migration 0023).
    data_window_start = models.DateTimeField("oldest event trained on", null=True, blank=True)
    data_window_end = models.DateTimeField("newest event trained on", null=True, blank=True)
    n_users = models.PositiveIntegerField(default=0)
    n_items = models.PositiveIntegerField(default=0)
    n_events = models.PositiveBigIntegerField(default=0)
    dimensions = models.PositiveSmallIntegerField(default=0)
    metrics = models.JSONField(default=dict, blank=True)
    # One entry per epoch: {"epoch", "loss", "val_ndcg10", "seconds"}.
    training_curve = models.JSONField(default=list, blank=True)
    training_seconds = models.FloatField(null=True, blank=True)
    device = models.CharField(max_length=32, blank=True)
    artifact = models.FileField(upload_to="recommendations/models/", blank=True)
    error = models.TextField(blank=True)
    # The score index's kind and the search length tuned on this version's own users
    # (recommendations.vectors.tuning): {"index", "ef_search" or "probes", "recall", "ms", ...}.
    vector_search = models.JSONField(default=dict, blank=True)
    # Progress of the task working on this version: {"stage", "done", "total"}.
    progress = models.JSONField(default=dict, blank=True)
    task_id = models.CharField(max_length=64, blank=True)
    # When its embed wrote the last of its vectors; cleared when an embed starts. A version
    # whose embed was interrupted (a killed worker) has some vectors but no time here, and
    # cannot be activated: it would serve without user or store vectors.
    embedded_at = models.DateTimeField(null=True, blank=True)
    # The stamp of its embed's catalogue read (`sql.read_as_of`): no vector of the version is
    # older, so the scheduled sync looks for saved products only from here (or `created_at`).
    vectors_read_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    activated_at = models.DateTimeField(null=True, blank=True)

    objects = ModelVersionQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="active"), name="rec_one_active_model_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.algorithm} v{self.pk} ({self.status})"
