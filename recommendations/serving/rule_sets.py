"""What a set of serving rules may say: `SERVING_RULES`, and an experiment variant's overrides.

Rules are checked where they are written (a variant's `clean()`, which the admin and the API
both run; `manage.py check` for the setting), so that serving never meets a rule it cannot
apply: a variant's bad rule would otherwise fail every list of every visitor in its experiment.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from recommendations.serving.types import Kind

MAX_LIMIT = 100
KINDS = frozenset(value for name, value in vars(Kind).items() if name.isupper()) | {"default"}


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_or_none(value: Any) -> bool:
    return value is None or (_integer(value) and value >= 1)


def _fraction_or_none(value: Any) -> bool:
    return value is None or ((_integer(value) or isinstance(value, float)) and 0 <= value <= 1)


# Each rule: what its value must be, as a test and in words.
RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "limit": (lambda value: _integer(value) and 1 <= value <= MAX_LIMIT, f"an integer from 1 to {MAX_LIMIT}"),
    "exclude_purchased": (lambda value: isinstance(value, bool), "true or false"),
    "max_per_store": (_positive_or_none, "null or an integer of at least 1"),
    "max_per_category": (_positive_or_none, "null or an integer of at least 1"),
    "mmr_lambda": (_fraction_or_none, "null or a number from 0 to 1"),
    "min_relative_score": (_fraction_or_none, "null or a number from 0 to 1"),
}


def rule_set_errors(rule_sets: Any) -> list[str]:
    """What is wrong with `{type: {rule: value}}` (`SERVING_RULES`' shape), one line each;
    empty when nothing is."""
    example = 'e.g. {"default": {"limit": 8}, "similar": {"max_per_store": 1}}'
    if not isinstance(rule_sets, dict):
        return [f"Rules must be a JSON object of recommendation types, {example}."]
    errors = []
    for kind, rules in rule_sets.items():
        if kind not in KINDS:
            errors.append(f"{kind!r} is not a recommendation type; use one of {', '.join(sorted(KINDS))}.")
        elif not isinstance(rules, dict):
            errors.append(f"The rules of {kind!r} must be a JSON object of rule names and values, {example}.")
        else:
            for name, value in rules.items():
                if name not in RULES:
                    errors.append(f"{kind}: {name!r} is not a rule; use one of {', '.join(RULES)}.")
                elif not RULES[name][0](value):
                    errors.append(f"{kind}: {name} must be {RULES[name][1]}, not {value!r}.")
    return errors
