"""The visitor's experiment variant, as serving applies it.

An experiment's variant may name a model version, a recommender and rule overrides; the
visitor must see that variant on every surface (API, template tags, the manager, campaign
ranking). So no service reads the active version itself: each asks this module, which asks
`recommendations.experiments` once per `Audience` (the answer is kept in `audience.memo`,
shared by the blocks of a page); the first ask records the visitor's exposure, unless the
audience is a preview (`record_exposure=False`).

Without a live experiment everything here means "the defaults": the active version, the
built-in recommender cascade, `SERVING_RULES`.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from recommendations.experiments.assignment import VariantChoice, variant_for, version_to_serve
from recommendations.models import ModelVersion
from recommendations.serving.types import Audience

if TYPE_CHECKING:
    from recommendations.serving.history import History

logger = logging.getLogger(__name__)

# The names a variant's `recommender` may take ("" is the default cascade).
TWO_TOWER, COOCCURRENCE, POPULAR = "two_tower", "cooccurrence", "popular"
RECOMMENDERS = (TWO_TOWER, COOCCURRENCE, POPULAR)


def variant(audience: Audience) -> VariantChoice | None:
    """The visitor's variant of the live experiment (None: no experiment, or nobody to bucket)."""
    if "variant" not in audience.memo:
        audience.memo["variant"] = variant_for(audience, record=audience.record_exposure)
    return audience.memo["variant"]


def model_version(audience: Audience) -> ModelVersion | None:
    """The model version to serve this visitor: their variant's when it has vectors, else the active one."""
    if "model_version" not in audience.memo:
        audience.memo["model_version"] = version_to_serve(variant(audience))
    return audience.memo["model_version"]


def recommender(audience: Audience) -> str:
    """The variant's recommender, or "" for the default cascade (also when it names an unknown one)."""
    choice = variant(audience)
    name = choice.recommender if choice is not None else ""
    if name and name not in RECOMMENDERS:
        logger.warning(
            "Variant %s/%s names the recommender %r, which serving does not know; serving the default. "
            "Use one of %s, or leave it empty.",
            choice.experiment_key,
            choice.variant_key,
            name,
            ", ".join(RECOMMENDERS),
        )
        return ""
    return name


def rule_layers(audience: Audience | None, kind: str) -> list[dict[str, Any]]:
    """The variant's rule overrides for `kind`, weakest first: its "default", then the type's own."""
    choice = variant(audience) if audience is not None else None
    if choice is None:
        return []
    return [choice.rules.get("default", {}), choice.rules.get(kind, {})]


def list_key(
    kind: str,
    audience: Audience,
    version: ModelVersion | None,
    *parts: Hashable,
    history: History | None = None,
) -> tuple[Hashable, ...]:
    """The cache key of a computed list: its kind, the visitor's variant and the model version
    that ranked it, for a personal list (`history` given) the visitor and their history's
    fingerprint, then the list's own `parts`. A new variant, activation or event makes a new
    key, so nothing has to be invalidated (see `serving.cache`)."""
    choice = variant(audience)
    variant_key = f"{choice.experiment_key}/{choice.variant_key}" if choice is not None else ""
    visitor = (audience.user_id, audience.session_id, history.fingerprint) if history is not None else ()
    return (kind, variant_key, version and version.pk, *visitor, *parts)


def served_context(audience: Audience) -> dict[str, str]:
    """Experiment and variant keys for the served-list record, so attribution can join them."""
    choice = variant(audience)
    return {} if choice is None else {"experiment": choice.experiment_key, "variant": choice.variant_key}
