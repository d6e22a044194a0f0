"""A campaign's audience rules: the JSON an editor types in the admin, parsed and checked.

The rules live in one JSON field so that a shop can add a rule without a migration; this
module is the one place that knows the keys, so a typo is an error that names the valid
keys instead of a rule that silently does nothing::

    {
        "rfm_segments": ["loyal_high_spender"],   # member benefits: who qualifies
        "logged_in_only": true,                  # anonymous visitors never see it
        "min_score": 0.5,                        # interest needed to qualify, 0 to 1 (default: none)
        "max_audience": 5000,                    # size of a saved audience (Segment)
        "inventory": {"min_stock": 50, "max_units_sold": 2, "days": 30, "limit": 100}
    }

`inventory` makes a flash sale pick its own products: well-stocked items that sold at most
`max_units_sold` units in the last `days` days.

`min_score` is on one scale, 0 (no sign of interest) to 1, on the storefront and in a saved
audience alike: with a model the cosine of the shopper's taste to the campaign's products
(0 when it points away), without one (or for products with no vectors) the affinity of
their recent events to the campaign. Member benefits qualify by segment alone (score 1),
so `min_score` is for promotions and flash sales.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError

RFM_SEGMENTS = ("loyal_high_spender", "lapsing", "new_customer", "occasional")
DEFAULT_MAX_AUDIENCE = 1000
# Interest scores (and so `min_score`) lie in [0, 1]; a member in a benefit's segment scores 1.
MIN_SCORE_RANGE = (0.0, 1.0)
MEMBER_SCORE = 1.0
MAX_AUDIENCE_LIMIT = 1_000_000


@dataclass(frozen=True)
class InventoryRule:
    """Which products count as slow sellers for an inventory-based flash sale."""

    min_stock: int = 20
    max_units_sold: int = 2
    days: int = 30
    limit: int = 50


@dataclass(frozen=True)
class AudienceRules:
    rfm_segments: tuple[str, ...] = ()
    logged_in_only: bool = False
    min_score: float | None = None
    max_audience: int = DEFAULT_MAX_AUDIENCE
    inventory: InventoryRule | None = None


def _int(value: Any, name: str, low: int, high: int, errors: list[str]) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        errors.append(f"{name} must be a whole number from {low:,} to {high:,}, got {value!r}.")
        return None
    return value


def _inventory(raw: Any, errors: list[str]) -> InventoryRule | None:
    if not isinstance(raw, Mapping):
        errors.append('inventory must be an object such as {"min_stock": 50, "max_units_sold": 2}.')
        return None
    known = set(InventoryRule.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        errors.append(
            f"Unknown inventory key(s): {', '.join(unknown)}. Valid keys: {', '.join(sorted(known))}."
        )
    values = {
        "min_stock": _int(
            raw.get("min_stock", InventoryRule.min_stock), "inventory.min_stock", 1, 10**9, errors
        ),
        "max_units_sold": _int(
            raw.get("max_units_sold", InventoryRule.max_units_sold),
            "inventory.max_units_sold",
            0,
            10**9,
            errors,
        ),
        "days": _int(raw.get("days", InventoryRule.days), "inventory.days", 1, 3650, errors),
        "limit": _int(raw.get("limit", InventoryRule.limit), "inventory.limit", 1, 10_000, errors),
    }
    if any(v is None for v in values.values()):
        return None
    return InventoryRule(**values)


def parse_rules(raw: Any) -> AudienceRules:
    """Parse a campaign's `audience_rules`; raises one `ValidationError` listing every problem."""
    if raw == "":
        return AudienceRules()
    if not isinstance(raw, Mapping):
        # null too: the column holds an object, {} when there are no rules.
        raise ValidationError(
            'Audience rules must be a JSON object, e.g. {"rfm_segments": ["lapsing"]}, or {} for none.'
        )
    errors: list[str] = []
    known = {"rfm_segments", "logged_in_only", "min_score", "max_audience", "inventory"}
    unknown = sorted(set(raw) - known)
    if unknown:
        errors.append(
            f"Unknown audience rule(s): {', '.join(unknown)}. Valid rules: {', '.join(sorted(known))}."
        )

    segments = raw.get("rfm_segments", [])
    if not isinstance(segments, list) or any(s not in RFM_SEGMENTS for s in segments):
        errors.append(f"rfm_segments must be a list of: {', '.join(RFM_SEGMENTS)}; got {segments!r}.")
        segments = []
    logged_in_only = raw.get("logged_in_only", False)
    if not isinstance(logged_in_only, bool):
        errors.append(f"logged_in_only must be true or false, got {logged_in_only!r}.")
    min_score = raw.get("min_score")
    low, high = MIN_SCORE_RANGE
    if min_score is not None and (
        isinstance(min_score, bool) or not isinstance(min_score, int | float) or not low <= min_score <= high
    ):
        errors.append(
            f"min_score must be a number from {low:g} to {high:g} (the share of interest needed, e.g. 0.3), "
            f"got {min_score!r}."
        )
        min_score = None
    max_audience = _int(
        raw.get("max_audience", DEFAULT_MAX_AUDIENCE), "max_audience", 1, MAX_AUDIENCE_LIMIT, errors
    )
    inventory = _inventory(raw["inventory"], errors) if "inventory" in raw else None
    if errors:
        raise ValidationError(errors)
    return AudienceRules(
        rfm_segments=tuple(segments),
        logged_in_only=bool(logged_in_only),
        min_score=float(min_score) if min_score is not None else None,
        max_audience=max_audience if max_audience is not None else DEFAULT_MAX_AUDIENCE,
        inventory=inventory,
    )
