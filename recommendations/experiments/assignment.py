"""Which variant a visitor gets: the one call serving makes on every request.

`variant_for(who)` accepts whatever the caller has (a request, a user, a serving
`Audience`, an anonymous session id) and returns a `VariantChoice`, or None when no
experiment is live. Signed-in users are bucketed by their primary key, anonymous visitors
by the engine's session id (`events.tracking.get_session_id`), so a visitor sees the same
variant on every page and in the API. A user who signs in mid-visit is bucketed by account
from then on (their variant may change once; the account's is the one that counts).

When no experiment runs, the winner of the most recently promoted experiment is the
default for everyone: that is what "promote" means. It stays what production serves while a
later experiment runs: a variant's empty fields (model version, recommender, rules) take the
promoted default's, so a control left empty is "as now", not the built-in defaults.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any

from django.db import DatabaseError, transaction

from recommendations.events.tracking import get_session_id, is_bot
from recommendations.experiments.bucketing import assign
from recommendations.models import (
    Assignment,
    Experiment,
    ExperimentStatus,
    ModelStatus,
    ModelVersion,
    Variant,
)
from recommendations.privacy.optout import is_opted_out
from recommendations.serving.rule_sets import rule_set_errors
from recommendations.vectors.queries import active_version

logger = logging.getLogger(__name__)

# A version serves only while it has vectors: `ready` (trained, or the rollback target) or `active`.
SERVABLE_STATUSES = (ModelStatus.READY, ModelStatus.ACTIVE)

# Seconds a process trusts its snapshot of the live experiment; start/stop clear it at once
# in the process that makes the change, other processes follow within this delay.
LIVE_TTL = 5.0


@dataclass(frozen=True)
class VariantChoice:
    """What serving needs to know about the visitor's variant; empty fields mean "default"."""

    experiment_key: str
    variant_key: str
    variant_id: int
    model_version_id: int | None = None
    model_version: ModelVersion | None = field(default=None, hash=False, compare=False, repr=False)
    recommender: str = ""
    rules: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    # True when this is a promoted winner served to everyone, not a running test.
    is_default: bool = False


@dataclass(frozen=True)
class LiveExperiment:
    """A snapshot of what is served: the running experiment's variants with their shares,
    or (not `running`) the promoted winner alone."""

    experiment_id: int
    key: str
    running: bool
    variants: tuple[tuple[VariantChoice, Decimal], ...]


@dataclass(frozen=True)
class Visitor:
    user_id: Any = None
    session_id: str = ""

    @property
    def unit(self) -> str | None:
        """The id that is hashed: the account when signed in, else the session."""
        if self.user_id is not None:
            return f"u:{self.user_id}"
        return f"s:{self.session_id}" if self.session_id else None


_lock = threading.Lock()
_snapshot: tuple[float, LiveExperiment | None] | None = None


def _choice(variant: Variant, *, is_default: bool = False) -> VariantChoice:
    return VariantChoice(
        experiment_key=variant.experiment.key,
        variant_key=variant.key,
        variant_id=variant.pk,
        model_version_id=variant.model_version_id,
        model_version=variant.model_version,
        recommender=variant.recommender,
        rules=_servable_rules(variant),
        is_default=is_default,
    )


def promoted_default() -> Variant | None:
    """The winner of the most recently promoted experiment: what everyone is served outside
    an experiment, and what a running experiment's empty fields stand for."""
    promoted = (
        Experiment.objects.filter(status=ExperimentStatus.STOPPED, winner__isnull=False)
        .select_related("winner__experiment", "winner__model_version")
        .order_by("-stopped_at")
        .first()
    )
    return promoted.winner if promoted is not None else None


def inherit_default(variant: Variant, default: Variant | None) -> list[str]:
    """Fill the variant's empty fields (in memory) from the promoted default; returns the names
    of the fields filled. A variant serves what it names, and production for the rest."""
    if default is None:
        return []
    filled = []
    if variant.model_version_id is None and default.model_version_id is not None:
        variant.model_version = default.model_version
        filled.append("model_version")
    if not variant.recommender and default.recommender:
        variant.recommender = default.recommender
        filled.append("recommender")
    if not variant.rules and default.rules:
        variant.rules = dict(default.rules)
        filled.append("rules")
    return filled


def _servable_rules(variant: Variant) -> dict[str, Any]:
    """The variant's rules, or none when serving cannot apply them: a variant saved around
    `Variant.clean()` (a raw update, an old row) must not fail every visitor's lists."""
    errors = rule_set_errors(variant.rules)
    if errors:
        logger.error(
            "Variant %s of experiment %s is served without its rules, which serving cannot apply: %s "
            "Fix them in the admin.",
            variant.key,
            variant.experiment.key,
            " ".join(errors),
        )
        return {}
    return dict(variant.rules)


def _load_live() -> LiveExperiment | None:
    default = promoted_default()
    running = Experiment.objects.filter(status=ExperimentStatus.RUNNING).first()
    if running is not None:
        variants = list(running.variants.select_related("experiment", "model_version").order_by("pk"))
        for variant in variants:
            inherit_default(variant, default)
        return LiveExperiment(
            running.pk, running.key, True, tuple((_choice(v), v.traffic_share) for v in variants)
        )
    if default is None:
        return None
    return LiveExperiment(
        default.experiment_id,
        default.experiment.key,
        False,
        ((_choice(default, is_default=True), Decimal(100)),),
    )


def model_versions_in_use() -> set[int]:
    """Ids of the model versions experiments serve or may serve again: every variant of the
    running experiment, and the promoted winner that is everyone's default once none runs.

    The purge keeps these, so a challenger never silently falls back to the control's model.
    """
    in_use = set(
        Variant.objects.filter(
            experiment__status=ExperimentStatus.RUNNING, model_version__isnull=False
        ).values_list("model_version_id", flat=True)
    )
    default = promoted_default()
    if default is not None and default.model_version_id is not None:
        in_use.add(default.model_version_id)
    return in_use


def live_experiment() -> LiveExperiment | None:
    """The running experiment (or the promoted default), cached for `LIVE_TTL` seconds."""
    global _snapshot
    now = time.monotonic()
    with _lock:
        if _snapshot is None or now - _snapshot[0] > LIVE_TTL:
            _snapshot = (now, _load_live())
        return _snapshot[1]


def clear_cache() -> None:
    """Forget the live snapshot, the exposures already recorded and the fallbacks already
    reported (after start/stop/promote)."""
    global _snapshot
    with _lock:
        _snapshot = None
    _record_exposure.cache_clear()
    _warn_fallback.cache_clear()


def visitor_of(who: Any) -> Visitor:
    """Who is asking, from a request (Django or DRF), a user, an `Audience`, or a session id.

    As serving does (`Audience`), a user who opted out of personalisation and a crawler are
    nobody to bucket: no variant, no exposure, and a crawler gets no session."""
    if who is None:
        return Visitor()
    if isinstance(who, str):
        return Visitor(session_id=who)
    if hasattr(who, "session_id") and hasattr(who, "user_id"):  # serving.types.Audience
        return Visitor(who.user_id, who.session_id or "")
    if hasattr(who, "META") or hasattr(who, "_request"):  # HttpRequest or DRF Request
        user = getattr(who, "user", None)
        if user is not None and user.is_authenticated:
            return Visitor() if is_opted_out(user) else Visitor(user.pk)
        if is_bot(who):
            return Visitor()
        return Visitor(session_id=get_session_id(who))
    if hasattr(who, "is_authenticated"):  # a user, or AnonymousUser
        return Visitor(who.pk) if who.is_authenticated and not is_opted_out(who) else Visitor()
    raise TypeError(
        f"variant_for() takes a request, a user, an Audience or a session id, not {type(who).__name__}."
    )


@lru_cache(maxsize=50_000)
def _record_exposure(experiment_id: int, variant_id: int, user_id: Any, session_id: str) -> None:
    """Store the first exposure, once per process and visitor (a failed write is not cached,
    so it is tried again); the unique constraints dedupe across processes. The savepoint keeps
    a failed write from breaking the caller's transaction (ATOMIC_REQUESTS)."""
    with transaction.atomic():
        Assignment.objects.bulk_create(
            [
                Assignment(
                    experiment_id=experiment_id,
                    variant_id=variant_id,
                    user_id=user_id,
                    session_id="" if user_id is not None else session_id[:64],
                )
            ],
            ignore_conflicts=True,
        )


def variant_for(who: Any, *, record: bool = True) -> VariantChoice | None:
    """The visitor's variant of the live experiment, or None (serve the defaults).

    `record=False` asks without logging an exposure (previews, the admin).
    """
    live = live_experiment()
    if live is None:
        return None
    if not live.running:
        return live.variants[0][0]
    visitor = visitor_of(who)
    unit = visitor.unit
    if unit is None:
        return None
    choice = assign(live.key, unit, live.variants)
    if record:
        try:
            _record_exposure(live.experiment_id, choice.variant_id, visitor.user_id, visitor.session_id)
        except DatabaseError:
            # Serving must not fail because an exposure could not be written.
            logger.exception("Could not record an exposure to experiment %r; serving goes on", live.key)
    return choice


def model_version_for(who: Any, *, record: bool = True) -> ModelVersion | None:
    """The model version to serve this visitor: the variant's when it still has vectors
    (ready or active), else the active one."""
    return version_to_serve(variant_for(who, record=record))


def version_to_serve(choice: VariantChoice | None) -> ModelVersion | None:
    """The model version a variant choice serves: its own while it has vectors, else the active one."""
    version = choice.model_version if choice is not None else None
    if version is None:
        return active_version()
    if version.status in SERVABLE_STATUSES:
        return version
    _warn_fallback(choice.experiment_key, choice.variant_key, version.pk, version.status)
    return active_version()


@lru_cache(maxsize=256)
def _warn_fallback(experiment_key: str, variant_key: str, version_id: int, status: str) -> None:
    """Say once per process that a variant serves the active model instead of its own: its
    results then measure the control's model, which nobody would otherwise notice."""
    logger.warning(
        "Variant %s of experiment %s names model version %s, which is %s and cannot serve; its "
        "visitors get the active version, so the experiment no longer tests that model. Stop the "
        "experiment and start a new one with a ready version.",
        variant_key,
        experiment_key,
        version_id,
        status,
    )
