"""Starting, stopping and promoting experiments: the only code that changes their status.

Each function checks everything first and then writes in one transaction, so a refused
action changes nothing; each clears this process's live-experiment snapshot so the change
is served at once (other processes follow within `assignment.LIVE_TTL`).
"""

from __future__ import annotations

import logging

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from recommendations.experiments.assignment import SERVABLE_STATUSES, clear_cache
from recommendations.experiments.results import experiment_results
from recommendations.models import Experiment, ExperimentStatus, Variant
from recommendations.models.experiments import validate_shares

logger = logging.getLogger(__name__)


def check_ready(experiment: Experiment) -> None:
    """Raise a `ValidationError` naming what keeps this experiment from starting."""
    variants = list(experiment.variants.select_related("model_version"))
    validate_shares([v.traffic_share for v in variants])
    controls = [v for v in variants if v.is_control]
    if len(controls) != 1:
        raise ValidationError("Mark exactly one variant as the control: the others are compared with it.")
    for variant in variants:
        version = variant.model_version
        # A version without vectors would quietly serve the active model: the test would compare nothing.
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
    check_ready(experiment)
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


def stop(experiment: Experiment, promote: Variant | None = None) -> Experiment:
    """Stop the experiment; with `promote`, that variant becomes the default for everyone."""
    if experiment.status != ExperimentStatus.RUNNING:
        raise ValidationError(f"Experiment {experiment.key!r} is not running, so it cannot be stopped.")
    if promote is not None and promote.experiment_id != experiment.pk:
        raise ValidationError(f"Variant {promote} does not belong to experiment {experiment.key!r}.")
    experiment.status = ExperimentStatus.STOPPED
    experiment.stopped_at = timezone.now()
    experiment.winner = promote
    experiment.save(update_fields=["status", "stopped_at", "winner"])
    clear_cache()
    if promote is None:
        logger.info("Stopped experiment %r without promoting a variant", experiment.key)
    else:
        logger.info("Stopped experiment %r and promoted %r to default", experiment.key, promote.key)
    return experiment


def stop_and_promote_winner(experiment: Experiment) -> Variant:
    """Stop and promote the suggested winner; refuses while there is no clear winner."""
    results = experiment_results(experiment)
    winner = results.suggested_winner
    if winner is None:
        raise ValidationError(
            f"No winner to promote in {experiment.key!r}. {results.status_line} Keep it running, "
            "or stop it without promoting, or promote a variant by hand."
        )
    variant = experiment.variants.get(pk=winner.funnel.variant_id)
    stop(experiment, promote=variant)
    return variant
