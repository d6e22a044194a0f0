"""Starting, stopping, promoting and deleting experiments: the only code that changes their status.

Each function checks everything first and then writes in one transaction, so a refused
action changes nothing; each clears this process's live-experiment snapshot so the change
is served at once (other processes follow within `assignment.LIVE_TTL`).
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from recommendations.experiments.assignment import (
    SERVABLE_STATUSES,
    clear_cache,
    inherit_default,
    promoted_default,
)
from recommendations.experiments.results import experiment_results
from recommendations.models import Experiment, ExperimentStatus, Variant
from recommendations.models.experiments import validate_variant_set

logger = logging.getLogger(__name__)


# `promote="winner"` asks for the variant the results suggest (see `stop`).
WINNER = "winner"


def _check_versions_can_serve(variants: list[Variant]) -> None:
    """Raise a `ValidationError` for a variant whose model version cannot serve: without
    vectors it would quietly serve the active model, and the test would compare nothing."""
    for variant in variants:
        version = variant.model_version
        if version is not None and version.status not in SERVABLE_STATUSES:
            raise ValidationError(
                f"Variant {variant.key!r} names model version {version.pk}, which is {version.status} and "
                "cannot serve. Choose a ready or active version for it, or clear its model version to "
                "serve the active one."
            )


def start(experiment: Experiment) -> Experiment:
    """Start bucketing visitors into the experiment's variants."""
    if experiment.status != ExperimentStatus.DRAFT:
        raise ValidationError(
            f"Experiment {experiment.key!r} is {experiment.get_status_display().lower()}; only a draft can "
            "start. Create a new experiment (with a new key) to test again."
        )
    variants = list(experiment.variants.select_related("model_version"))
    validate_variant_set(variants)
    _check_versions_can_serve(variants)
    with transaction.atomic():
        running = Experiment.objects.select_for_update().filter(status=ExperimentStatus.RUNNING).first()
        if running is not None:
            raise ValidationError(f"Experiment {running.key!r} is running; stop it before starting another.")
        experiment.status = ExperimentStatus.RUNNING
        experiment.started_at = timezone.now()
        experiment.save(update_fields=["status", "started_at"])
    clear_cache()
    logger.info("Started experiment %r with %d variants", experiment.key, experiment.variants.count())
    return experiment


def stop(experiment: Experiment, promote: Variant | str | None = None) -> Variant | None:
    """Stop the experiment; a promoted variant becomes the default for everyone. Without one,
    the earlier promoted default (`assignment.promoted_default`), if any, stays.

    `promote` is the variant, its key, or `WINNER` for the suggested winner (refused while
    the results name none). Returns the promoted variant, or None.
    """
    if experiment.status != ExperimentStatus.RUNNING:
        raise ValidationError(f"Experiment {experiment.key!r} is not running, so it cannot be stopped.")
    variant = _variant_to_promote(experiment, promote)
    with transaction.atomic():
        if variant is not None:
            # Where its fields were empty the variant served the earlier default's: it keeps
            # them, so promoting a control left "as now" does not drop the production config.
            inherited = inherit_default(variant, promoted_default())
            if inherited:
                variant.save(update_fields=inherited)
        experiment.status = ExperimentStatus.STOPPED
        experiment.stopped_at = timezone.now()
        experiment.winner = variant
        experiment.save(update_fields=["status", "stopped_at", "winner"])
    clear_cache()
    if variant is None:
        logger.info("Stopped experiment %r without promoting a variant", experiment.key)
    else:
        logger.info("Stopped experiment %r and promoted %r to default", experiment.key, variant.key)
    return variant


def check_deletable(experiment: Experiment) -> None:
    """Raise `ValidationError` saying why the experiment cannot be deleted now: it runs
    (visitors are being bucketed into its variants, and its results would go with it)."""
    if experiment.status == ExperimentStatus.RUNNING:
        raise ValidationError(
            f"Experiment {experiment.key!r} is running; stop it before deleting it (its results go with it)."
        )


def delete(experiment: Experiment) -> None:
    """Delete the experiment with its variants and exposures; refused while it runs."""
    check_deletable(experiment)
    key = experiment.key
    experiment.delete()
    clear_cache()  # a stopped experiment's promoted variant was served as the default
    logger.info("Deleted experiment %r", key)


def _variant_to_promote(experiment: Experiment, promote: Variant | str | None) -> Variant | None:
    if promote is None:
        return None
    if isinstance(promote, Variant):
        if promote.experiment_id != experiment.pk:
            raise ValidationError(f"Variant {promote} does not belong to experiment {experiment.key!r}.")
        return promote
    if promote == WINNER:
        results = experiment_results(experiment)
        if results.suggested_winner is None:
            raise ValidationError(
                f"No winner to promote in {experiment.key!r}. {results.status_line} Keep it running, "
                "or stop it without promoting, or promote a variant by hand."
            )
        return experiment.variants.get(pk=results.suggested_winner.funnel.variant_id)
    variant = experiment.variants.filter(key=promote).first()
    if variant is None:
        keys = ", ".join(experiment.variants.values_list("key", flat=True))
        raise ValidationError(
            f"Experiment {experiment.key!r} has no variant {promote!r}: promote one of {keys}, "
            f'or "{WINNER}" for the suggested winner.'
        )
    return variant
