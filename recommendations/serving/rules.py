"""Business rules every list goes through, whatever produced it.

`finalize()` takes candidates from any source and applies, in this order: exclusions (ids
in the request, products already on the page, products already bought when the type's
rule says so), availability on the host's table (`available_q()`, one query that also
loads the objects), boost/bury rules, diversity (MMR; per-store and per-category caps,
which order the list and let what they held back complete it), the limit; then records
what was served and builds the reasons.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
from django.core.exceptions import FieldError, ValidationError
from django.db import models
from django.db.models import BooleanField, Case, Q, Value, When

from recommendations.adapters import ProductAdapter, get_product_adapter, key_order
from recommendations.conf import rec_settings
from recommendations.serving import history as history_module
from recommendations.serving import variants
from recommendations.serving.attribution import record_served
from recommendations.serving.compiled import KeyedQuery, KeyIn, keyed_query
from recommendations.serving.errors import require_product, require_store
from recommendations.serving.presentation import (
    Card,
    ShownObjects,
    card_from_row,
    card_version_field,
    product_card,
)
from recommendations.serving.rule_sets import KINDS, MAX_LIMIT
from recommendations.serving.types import (
    Audience,
    Candidate,
    Kind,
    Options,
    Recommendation,
    RecommendationResult,
)

# Candidates fetched per item shown: room for stock, exclusion and diversity filters.
OVERFETCH = 4
# The lists that boost rules apply to: those of products (store lists rank stores).
PRODUCT_KINDS = KINDS - {"default", Kind.STORES, Kind.SIMILAR_STORES}
BOOST_RULE_KEYS = ("filter", "factor", "types")


def rules_for(kind: str, audience: Audience | None = None) -> dict[str, Any]:
    """The rule set of one type, each layer over the last: "default", the type's own rules
    (each the host's laid over the built-in ones by the settings object), then (for an
    audience in an experiment) the variant's "default" and the variant's type."""
    rule_sets = rec_settings.SERVING_RULES
    merged: dict[str, Any] = {}
    for layer in (rule_sets["default"], rule_sets.get(kind, {}), *variants.rule_layers(audience, kind)):
        merged.update(layer)
    return merged


def limit_for(kind: str, options: Options, audience: Audience | None = None) -> int:
    return max(1, min(options.limit or rules_for(kind, audience)["limit"], MAX_LIMIT))


def pool_size(kind: str, options: Options, audience: Audience) -> int:
    """Candidates a list of `kind` gathers for the rules: OVERFETCH per item shown, plus what
    the request and the page's earlier blocks exclude."""
    return limit_for(kind, options, audience) * OVERFETCH + len(options.exclude) + len(audience.shown)


def _column(adapter: ProductAdapter, field: str | None) -> str | None:
    """The column to group by for diversity: a foreign key's id or the plain field."""
    return adapter.model._meta.get_field(field).attname if field else None


def _boost_rules(kind: str) -> list[dict[str, Any]]:
    return [rule for rule in rec_settings.BOOST_RULES if kind in rule.get("types", [kind])]


def _boost_flags(boosts: Sequence[dict[str, Any]]) -> dict[str, Case]:
    """One annotation per rule: whether a product matches the rule's filter."""
    return {
        f"_boost_{i}": Case(
            When(Q(**rule["filter"]), then=Value(True)), default=False, output_field=BooleanField()
        )
        for i, rule in enumerate(boosts)
    }


def boost_rule_errors(boosts: Any) -> list[str]:
    """What is wrong with `BOOST_RULES`, one line each; empty when nothing is. Checked by
    `manage.py check`: serving applies each rule to every list of its types, so a rule it
    cannot apply fails them all, and a misspelt type is ignored without a word."""
    example = '{"filter": {"brand": "Acme"}, "factor": 1.5, "types": ["for_you"]}'
    if not isinstance(boosts, list | tuple):
        return [f"Boost rules must be a list of rules, e.g. [{example}]."]
    adapter = get_product_adapter()
    model = adapter.model._meta.label
    errors = []
    for number, rule in enumerate(boosts, start=1):
        if not isinstance(rule, dict):
            errors.append(f"rule {number} must be a dict, e.g. {example}, not {rule!r}.")
            continue
        errors += [
            f"rule {number}: {key!r} is not part of a rule; use {', '.join(BOOST_RULE_KEYS)}."
            for key in rule
            if key not in BOOST_RULE_KEYS
        ]
        lookups = rule.get("filter")
        if not isinstance(lookups, dict):
            errors.append(f"rule {number}: filter must be a dict of lookups on {model}, not {lookups!r}.")
        else:
            # Built as serving builds it, so that whatever would fail there fails here.
            try:
                adapter.index_queryset().annotate(**_boost_flags([rule]))
            except (FieldError, ValidationError, ValueError, TypeError) as exc:
                reason = "; ".join(exc.messages) if isinstance(exc, ValidationError) else str(exc)
                errors.append(f"rule {number}: filter {lookups!r} is not a lookup on {model}: {reason}")
        factor = rule.get("factor")
        if not (isinstance(factor, int | float) and not isinstance(factor, bool) and 0 <= factor < math.inf):
            given = repr(factor) if "factor" in rule else "missing"
            errors.append(
                f"rule {number}: factor must be a number >= 0 (above 1 boosts, below 1 buries, 0 removes), "
                f"not {given}."
            )
        types = rule.get("types", [])
        if not isinstance(types, list | tuple):
            errors.append(f"rule {number}: types must be a list of recommendation types, not {types!r}.")
        else:
            kinds = ", ".join(sorted(PRODUCT_KINDS))
            errors += [
                f"rule {number}: {kind!r} is not a list of products; use one of {kinds}."
                for kind in types
                if not isinstance(kind, str) or kind not in PRODUCT_KINDS
            ]
    return errors


def dedupe(candidates: Iterable[Candidate]) -> list[Candidate]:
    """One candidate per product: the best tier, then the best score."""
    best: dict[str, Candidate] = {}
    for candidate in sorted(candidates, key=lambda c: (c.tier, -c.score)):
        best.setdefault(candidate.product_id, candidate)
    return list(best.values())


def close_matches(candidates: list[Candidate], share: float | None) -> list[Candidate]:
    """Those scoring at least `share` of the best one's score (`min_relative_score`): close
    matches rather than a full list padded with unrelated products. All of them when `share`
    is unset or none scores above 0 (no scale to judge by)."""
    best = max((c.score for c in candidates), default=0.0)
    if not share or best <= 0:
        return candidates
    return [c for c in candidates if c.score >= share * best]


def _adjusted_scores(candidates: list[Candidate], factors: dict[str, float]) -> dict[str, float]:
    """Scores normalised to (0, 1] within each tier, times the boost/bury factor."""
    by_tier: dict[int, list[float]] = {}
    for c in candidates:
        by_tier.setdefault(c.tier, []).append(c.score)
    ranges = {tier: (min(scores), max(scores)) for tier, scores in by_tier.items()}
    out = {}
    for c in candidates:
        low, high = ranges[c.tier]
        normalised = 1.0 if high == low else 0.05 + 0.95 * (c.score - low) / (high - low)
        out[c.product_id] = normalised * factors.get(c.product_id, 1.0)
    return out


def _similarity(a: Candidate, b: Candidate, groups: dict[str, Any]) -> float:
    if a.embedding is not None and b.embedding is not None:
        denominator = float(np.linalg.norm(a.embedding) * np.linalg.norm(b.embedding)) or 1.0
        return float(a.embedding @ b.embedding) / denominator
    return 1.0 if groups.get(a.product_id) == groups.get(b.product_id) else 0.0


def _diversify(
    ordered: list[Candidate],
    adjusted: dict[str, float],
    groups: dict[str, tuple[Any, Any]],
    rules: dict[str, Any],
    limit: int,
    taken: Sequence[Candidate] = (),
) -> list[Candidate]:
    """Greedy pick: MMR when `mmr_lambda` is set, and per-store / per-category caps.

    `groups` maps each product to its (store, category) keys. `taken` is what the list already
    holds when the backfill tops it up: it counts against the caps, and MMR's novelty.
    The caps ask for variety, not for a short list: the candidates they hold back follow the
    rest of their tier, before any candidate of a fallback tier (a product like the visitor's
    taste beats a trending one).
    """
    stores = {pid: store for pid, (store, _) in groups.items()}
    categories = {pid: category for pid, (_, category) in groups.items()}
    max_store, max_category = rules.get("max_per_store"), rules.get("max_per_category")
    mmr = rules.get("mmr_lambda")
    store_counts: dict[Any, int] = {}
    category_counts: dict[Any, int] = {}
    for candidate in taken:
        store, category = groups[candidate.product_id]
        store_counts[store] = store_counts.get(store, 0) + 1
        category_counts[category] = category_counts.get(category, 0) + 1
    remaining = list(ordered)
    chosen: list[Candidate] = []
    held_back: list[Candidate] = []
    while remaining and len(chosen) < limit:
        # Tiers stay in order: a tier's held-back candidates come before the next tier.
        tier = remaining[0].tier
        if held_back and held_back[0].tier != tier:
            chosen += held_back[: limit - len(chosen)]
            held_back.clear()
            continue
        if mmr is None:
            pick = remaining[0]
        else:
            # Within the first remaining tier, trade relevance for novelty.
            pool = [c for c in remaining if c.tier == tier]
            pick = max(
                pool,
                key=lambda c: (
                    mmr * adjusted[c.product_id]
                    - (1 - mmr) * max((_similarity(c, s, categories) for s in (*taken, *chosen)), default=0.0)
                ),
            )
        remaining.remove(pick)
        store, category = stores[pick.product_id], categories[pick.product_id]
        if (max_store and store is not None and store_counts.get(store, 0) >= max_store) or (
            max_category and category is not None and category_counts.get(category, 0) >= max_category
        ):
            held_back.append(pick)
            continue
        store_counts[store] = store_counts.get(store, 0) + 1
        category_counts[category] = category_counts.get(category, 0) + 1
        chosen.append(pick)
    return chosen + held_back[: limit - len(chosen)]


def titles(product_ids: Iterable[str]) -> dict[str, str]:
    """Titles of products named in reasons, in one query."""
    keys = list(set(product_ids))
    if not keys:
        return {}
    adapter = get_product_adapter()
    rows = adapter.by_keys(keys).values_list("pk", adapter.title_field)
    return {adapter.key(pk): str(title) for pk, title in rows}


def finalize(
    kind: str,
    candidates: Sequence[Candidate],
    audience: Audience,
    options: Options,
    *,
    model_version_id: int | None = None,
    context: dict[str, Any] | None = None,
    exclude: Iterable[str] = (),
    seed: str | None = None,
    store_id: str | None = None,
    backfill: Callable[[], Sequence[Candidate]] | None = None,
) -> RecommendationResult:
    """Apply the rules of `kind` to candidates and return the answer in order.

    `exclude` holds ids the service itself leaves out; `seed`, the product the request names
    ("similar": left out too, and `NotFound` unless it exists); `store_id` keeps only that
    store's products, as the host's table says (read with the facts, so every store shares
    one compiled query), and is `NotFound` unless the store exists. Both are proven to exist
    by the facts read (the seed among the available products, the store as one's store), so
    a separate lookup runs only when the read does not show them. `backfill` gives the
    candidates that fill a list the rules left short (stock, per-store caps), ranked after
    all the others: the fallback tiers a service's cascade skipped because its own tiers
    looked like enough before the rules ran. The per-store and per-category caps order the
    list rather than shorten it (`_diversify`): the products they hold back follow the rest
    of their tier, before lower tiers and the backfill, whose own products the caps count
    with what the list already holds.
    """
    adapter = get_product_adapter()
    rules = rules_for(kind, audience)
    limit = limit_for(kind, options, audience)
    excluded = set(options.exclude) | set(audience.shown) | set(exclude) | ({seed} if seed else set())
    if rules.get("exclude_purchased") and audience.is_known:
        excluded |= {event.product_id for event in history_module.purchases(audience)}
    pool = [c for c in dedupe(candidates) if c.product_id not in excluded]
    # The main source's scale; fallback tiers score on their own.
    main = close_matches([c for c in pool if c.tier == 0], rules.get("min_relative_score"))
    pool = [*main, *(c for c in pool if c.tier)]

    boosts = _boost_rules(kind)
    columns = [_column(adapter, adapter.store_field), _column(adapter, adapter.category_field)]
    # With the card cache on, the same read says whether each candidate's card is still valid.
    version_field = card_version_field()

    def facts_query(keys: list[str]) -> models.QuerySet:
        # Availability, grouping keys and boost flags of every candidate as plain tuples:
        # model instances are built later only for the few shown whose card is not kept.
        flags = _boost_flags(boosts)
        rows = adapter.index_queryset().filter(adapter.available_q(), KeyIn(adapter.model, keys))
        # Unordered: the candidates' order is decided here (a default ordering costs a sort).
        rows = rows.annotate(**flags).order_by()
        version = [version_field] if version_field else []
        return rows.values_list("pk", *version, *[c for c in columns if c], *flags)

    def keyed(keys: list[str]) -> models.QuerySet:
        return adapter.index_queryset().filter(KeyIn(adapter.model, keys)).order_by()

    def shown_query(keys: list[str]) -> models.QuerySet:
        return keyed(keys).select_related(*adapter.related_fields())

    def cards_query(keys: list[str]) -> models.QuerySet:
        return keyed(keys).values_list("pk", *adapter.card_values)

    def read_cards(keys: list[str]) -> dict[str, Card]:
        rows = compiled("cards", cards_query).rows(keys)
        return {card["id"]: card for card in map(card_from_row, rows)}

    def compiled(name: str, build: Callable[[list[str]], models.QuerySet]) -> KeyedQuery:
        return keyed_query((name, kind, type(adapter), adapter.model, version_field), build)

    # Where each value sits in a row: key, [version], [store], [category], boost flags.
    at = 1 + bool(version_field)
    store_at = at if columns[0] else None
    category_at = at + bool(columns[0]) if columns[1] else None
    flags_at = at + bool(columns[0]) + bool(columns[1])
    boost_factors = [float(rule["factor"]) for rule in boosts]
    versions: dict[str, Any] = {}
    # (store, category) of every candidate read: a list the backfill tops up counts its own.
    groups_read: dict[str, tuple[Any, Any]] = {}

    def choose(pool: list[Candidate], taken: Sequence[Candidate] = ()) -> list[Candidate]:
        keys = [c.product_id for c in pool] + ([seed] if seed else [])
        facts = compiled("facts", facts_query).rows(keys) if keys else []
        groups: dict[str, tuple[Any, Any]] = {}
        factors: dict[str, float] = {}
        # A search sends a few hundred candidates, so this loop is kept plain.
        for row in facts:
            pid = adapter.key(row[0])
            if version_field:
                versions[pid] = row[1]
            groups[pid] = (
                row[store_at] if store_at is not None else None,
                row[category_at] if category_at is not None else None,
            )
            factor = 1.0
            for boost, flagged in zip(boost_factors, row[flags_at:], strict=True):
                if flagged:
                    factor *= boost
            factors[pid] = factor
        groups_read.update(groups)
        if seed is not None and seed not in groups:
            require_product(seed)  # not available now, or no such product
        if store_id is not None:
            groups = {pid: group for pid, group in groups.items() if str(group[0]) == str(store_id)}
            if not groups:
                require_store(store_id)
        pool = [c for c in pool if c.product_id in groups and factors[c.product_id] > 0]
        adjusted = _adjusted_scores(pool, factors)
        ordered = sorted(pool, key=lambda c: (c.tier, -adjusted[c.product_id], key_order(c.product_id)))
        return _diversify(ordered, adjusted, groups_read, rules, limit - len(taken), taken)

    chosen = choose(pool)
    if len(chosen) < limit and backfill is not None:
        # After every proposed candidate, whatever the backfill's scores.
        proposed = {c.product_id for c in pool}
        extra = [
            c for c in dedupe(backfill()) if c.product_id not in excluded and c.product_id not in proposed
        ]
        if extra:
            chosen += choose(extra, taken=chosen)
    shown = ShownObjects(
        [c.product_id for c in chosen],
        card=product_card,
        key=adapter.key,
        read=compiled("shown", shown_query).objects,
        read_cards=read_cards if adapter.card_values else None,
        versions=versions if version_field else None,
    )
    return build_result(
        kind,
        chosen,
        shown,
        audience,
        options,
        model_version_id=model_version_id,
        context=context,
        model=adapter.model,
    )


def build_result(
    kind: str,
    chosen: list[Candidate],
    shown: ShownObjects,
    audience: Audience,
    options: Options,
    *,
    model: type[models.Model],
    model_version_id: int | None = None,
    context: dict[str, Any] | None = None,
    page_unique: bool = True,
) -> RecommendationResult:
    """Record the list, mark its items as shown on the page and attach reasons.

    `shown` reads the chosen objects when a surface asks for them. `page_unique=False` for
    lists of stores, whose ids must not hide products.
    """
    ids = [c.product_id for c in chosen]
    sources = [c.source for c in chosen]
    source = max(set(sources), key=sources.count) if sources else "none"
    recommendation_id = record_served(
        kind=kind,
        source=source,
        audience=audience,
        product_ids=ids,
        scores=[c.score if math.isfinite(c.score) else 0.0 for c in chosen],
        model_version_id=model_version_id,
        context={**(context or {}), **variants.served_context(audience), "sources": sources},
    )
    if page_unique:
        audience.shown.update(ids)
    named = titles(c.about for c in chosen if c.about) if options.explain else {}
    recommendations = [
        Recommendation(
            product_id=c.product_id,
            score=round(float(c.score), 6),
            source=c.source,
            reason=c.explain(named) if options.explain else "",
            recommendation_id=recommendation_id,
            position=position,
        )
        for position, c in enumerate(chosen, start=1)
    ]
    return RecommendationResult(
        kind, recommendation_id, source, model, recommendations, shown, model_version_id
    )
