"""A/B experiments: variants of the recommender with traffic shares, and who got which.

A variant changes what serving does for its visitors: another model version, another
recommender (source), or other business rules. Visitors are bucketed by hashing, so the
`Assignment` rows are not needed to decide a variant; they record who was exposed and
when, which is the denominator of "revenue per visitor" and the start of attribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from recommendations.models.registry import ModelVersion

FULL_TRAFFIC = Decimal(100)


class ExperimentStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    RUNNING = "running", "Running"
    STOPPED = "stopped", "Stopped"


def validate_variant_set(variants: Sequence[Variant]) -> None:
    """Check the variants of one experiment as a whole, which no single row can: at least two,
    traffic shares (percent) adding up to exactly 100, exactly one control, distinct keys.

    The admin's inline formset, the REST serializer and `lifecycle.start` all call this, so
    each refuses the same sets with the same words. Raises one `ValidationError` listing
    every problem; each row's own fields are checked by `Variant.clean()`.
    """
    problems = []
    shares = [Decimal(str(v.traffic_share)) for v in variants if v.traffic_share is not None]
    total = sum(shares, Decimal(0))
    if len(shares) < 2:
        problems.append("An experiment needs at least two variants (a control and a challenger).")
    elif total != FULL_TRAFFIC:
        problems.append(
            f"Traffic shares add up to {total.normalize():f}%, not 100%. "
            f"Adjust them ({', '.join(f'{v.normalize():f}' for v in shares)}) so that they sum to 100."
        )
    if sum(bool(v.is_control) for v in variants) != 1:
        problems.append("Mark exactly one variant as the control: the others are compared with it.")
    keys = [v.key for v in variants]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        problems.append(
            f"Variant key(s) {', '.join(map(repr, repeated))} used more than once: give each variant "
            "of an experiment its own key."
        )
    if problems:
        raise ValidationError(problems)


class Experiment(models.Model):
    """One A/B (or A/B/n) test of the recommendations, identified by a stable `key`.

    The key salts the hash that buckets visitors, so renaming an experiment keeps everyone
    in their variant while a new key reshuffles them. At most one experiment runs at a
    time: a visitor must see one consistent recommender on every page.
    """

    key = models.SlugField(max_length=60, unique=True, help_text="Salts the bucketing hash; do not reuse.")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=ExperimentStatus.choices, default=ExperimentStatus.DRAFT, db_index=True
    )
    attribution_window_hours = models.PositiveIntegerField(
        default=72,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 90)],
        help_text="A purchase of a clicked product within this many hours counts for the click's variant.",
    )
    min_visitors = models.PositiveIntegerField(
        default=100,
        validators=[MinValueValidator(10)],
        help_text="Visitors each variant needs before results are judged.",
    )
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    stopped_at = models.DateTimeField(null=True, blank=True, editable=False)
    winner = models.ForeignKey(
        "Variant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["status"], condition=Q(status="running"), name="rec_one_running_experiment"
            )
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.pk and self.status == ExperimentStatus.RUNNING:
            validate_variant_set(list(self.variants.all()))

    @property
    def is_editable(self) -> bool:
        """Only a draft's variants may change: once visitors are bucketed, changing an arm
        would mix two treatments in one set of results."""
        return self.status == ExperimentStatus.DRAFT

    def locked_fields(self) -> list[str]:
        """Fields that can no longer change: the key salts the bucketing, so a new key on a
        started experiment would move visitors to other variants."""
        return [] if self.is_editable else ["key"]


class Variant(models.Model):
    """One arm of an experiment. Empty fields mean "as production serves": the promoted
    default's (the last promoted winner, `experiments.assignment.promoted_default`), else
    serving's built-in defaults."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="variants")
    key = models.SlugField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    is_control = models.BooleanField(default=False, help_text="The baseline the others are compared with.")
    traffic_share = models.DecimalField(
        max_digits=5,
        decimal_places=2,
        validators=[MinValueValidator(Decimal("0.01")), MaxValueValidator(FULL_TRAFFIC)],
        help_text="Percent of visitors; the shares of an experiment add up to 100.",
    )
    model_version = models.ForeignKey(
        ModelVersion,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="Serve from this model version instead of the active one.",
    )
    recommender = models.CharField(
        max_length=40, blank=True, help_text='A recommender (source) name, e.g. "popular" or "two_tower".'
    )
    rules = models.JSONField(
        default=dict, blank=True, help_text='SERVING_RULES overrides, e.g. {"default": {"max_per_store": 1}}.'
    )

    class Meta:
        ordering = ["experiment", "-is_control", "key"]
        constraints = [
            models.UniqueConstraint(fields=["experiment", "key"], name="rec_variant_key_unique"),
            models.UniqueConstraint(
                fields=["experiment"], condition=Q(is_control=True), name="rec_variant_one_control"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.experiment.key}/{self.key}"

    def clean(self) -> None:
        # Serving imports the models, so these are imported here.
        from recommendations.serving.rule_sets import rule_set_errors
        from recommendations.serving.variants import RECOMMENDERS

        problems = {}
        if self.recommender and self.recommender not in RECOMMENDERS:
            problems["recommender"] = (
                f"{self.recommender!r} is not a recommender; use one of {', '.join(RECOMMENDERS)}, "
                "or leave it empty for the default."
            )
        errors = rule_set_errors(self.rules)
        if errors:
            problems["rules"] = errors
        if problems:
            raise ValidationError(problems)

    @property
    def label(self) -> str:
        return self.name or self.key


class Assignment(models.Model):
    """A visitor's first exposure to an experiment: a signed-in user or an anonymous session."""

    experiment = models.ForeignKey(Experiment, on_delete=models.CASCADE, related_name="assignments")
    variant = models.ForeignKey(Variant, on_delete=models.CASCADE, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    session_id = models.CharField(max_length=64, blank=True)
    assigned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["experiment", "user"], condition=Q(user__isnull=False), name="rec_assignment_user"
            ),
            models.UniqueConstraint(
                fields=["experiment", "session_id"],
                condition=Q(user__isnull=True),
                name="rec_assignment_session",
            ),
            models.CheckConstraint(
                condition=Q(user__isnull=False) | ~Q(session_id=""), name="rec_assignment_has_visitor"
            ),
        ]

    def __str__(self) -> str:
        who = f"user {self.user_id}" if self.user_id else f"session {self.session_id[:8]}"
        return f"{who} -> {self.variant_id}"
