"""What a campaign is about, in product terms.

A campaign names products, category names and stores. Targeting needs two views of that:

- the *offer*: available products the campaign shows (its own products, those of its stores
  and categories, or for an inventory flash sale the slow sellers among them); their
  vectors describe the campaign to the model;
- the *match*: whether a product a shopper touched belongs to the campaign's world (same
  product, store or category), which is how interest is measured without a model.

Category names are matched case-insensitively (a Greek final sigma as any sigma) against the
category paths of serving's search index (`ProductDocument`, kept in step with the
catalogue) through its index of the folded paths, and stores through the adapter's store
field. What a campaign may offer (its scope, a flash sale's slow sellers) is cached for
`CACHE_SECONDS` per campaign version; the campaigns a page weighs are read from the cache at
once, and those missing computed together (one query for their stores, one for their
categories), so a cold cache costs the same with 30 campaigns as with one.

Availability is read from the host's table on every call, because checkout changes stock
without touching the campaign, and a sold-out sale must disappear at once; but only for the
products a caller uses (`offers`' size: the first ones of each campaign, more only where
those are sold out), with the ids as one array parameter. Checking a whole scope on every
page cost 0.6 s with 30 campaigns over 12,000 products, and failed past 65,535 products (a
statement's limit of parameters).

An inventory flash sale picks its products when it starts and keeps them until it ends:
they are stored on the campaign (`sale_product_ids`), so that the slow sellers that start to
sell, as the sale means them to, stay in it. Only an edit of what it promotes or of its
inventory rule chooses them again; sold-out ones still leave it at once.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from django.db import connection

from recommendations.adapters import ProductRecord, get_product_adapter
from recommendations.marketing.inventory import slow_sellers
from recommendations.models import Campaign, ProductDocument
from recommendations.models.search import FOLD_CATEGORIES
from recommendations.serving.cache import from_cache, many_from_cache
from recommendations.serving.compiled import KeyIn
from recommendations.sql import array_literal
from recommendations.text import fold_category

CACHE_SECONDS = 600
CACHE_PREFIX = "recommendations:campaign-products:"
T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
# `offers` first reads the stock of this many times the products asked for, then of this many
# times as many again, and so on, only for the campaigns whose products read so far were too
# often sold out.
READ_AHEAD = 4


def _folded(sql: str) -> str:
    """`fold_category` of each name of an SQL text array, in SQL: the function that the search
    index's `rec_doc_categories_folded` keeps of `categories`. It folds the names Python folded
    (`CampaignScope.categories`) as they are, so they meet the documents' names folded in SQL."""
    return f"{FOLD_CATEGORIES}({sql})"


@dataclass(frozen=True)
class CampaignScope:
    """The campaign's products, stores and categories (`fold_category`) as sets, for matching."""

    product_ids: frozenset[str]
    store_ids: frozenset[str]
    categories: frozenset[str]

    def matches(self, record: ProductRecord) -> bool:
        """Whether this product belongs to the campaign's world."""
        return (
            record.id in self.product_ids
            or (record.store_id is not None and record.store_id in self.store_ids)
            or any(fold_category(name) in self.categories for name in record.category_path)
        )

    @property
    def is_empty(self) -> bool:
        return not (self.product_ids or self.store_ids or self.categories)


def cache_key(campaign: Campaign, part: str) -> str:
    """The cache key of one result (`part`) about the campaign as it is now: editing the
    campaign, or a flash sale choosing its products, starts afresh."""
    stamp = campaign.updated_at.timestamp() if campaign.updated_at else 0
    return f"{CACHE_PREFIX}{part}:{campaign.pk}:{stamp}:{campaign.sale_products_digest}"


def _cached(campaign: Campaign, part: str, compute: Callable[[], T]) -> T:
    """Reuse a result per campaign for CACHE_SECONDS."""
    return from_cache(cache_key(campaign, part), compute, CACHE_SECONDS)


def _matching(scopes: Mapping[K, CampaignScope]) -> dict[K, list[str]]:
    """Ids of the products in each scope, available or not, sorted: one query for all the
    scopes' stores and one for all their categories, however many scopes."""
    stores = _in_stores({store for scope in scopes.values() for store in scope.store_ids})
    categories = _in_categories({name for scope in scopes.values() for name in scope.categories})
    return {
        key: sorted(
            set(scope.product_ids).union(
                *(stores.get(store, ()) for store in scope.store_ids),
                *(categories.get(name, ()) for name in scope.categories),
            )
        )
        for key, scope in scopes.items()
    }


def _in_stores(store_ids: Collection[str]) -> dict[str, list[str]]:
    """The indexed products of these stores, by store id."""
    adapter = get_product_adapter()
    found: dict[str, list[str]] = defaultdict(list)
    if not store_ids or not adapter.store_field:
        return found
    rows = adapter.index_queryset().filter(**{f"{adapter.store_field}__in": sorted(store_ids)})
    for store, pk in rows.order_by().values_list(adapter.store_field, "pk"):
        found[adapter.key(store)].append(adapter.key(pk))
    return found


def _in_categories(names: Collection[str]) -> dict[str, list[str]]:
    """The products whose category path names one of these (`fold_category`) names, by name:
    for each name, an overlap with the folded paths, which their GIN index answers."""
    found: dict[str, list[str]] = defaultdict(list)
    if not names:
        return found
    table = connection.ops.quote_name(ProductDocument._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT name, product_id FROM unnest(%s::text[]) AS name, LATERAL (SELECT product_id "
            f"FROM {table} WHERE {_folded('categories')} && {_folded('ARRAY[name]')}) AS found",
            [sorted(names)],
        )
        for name, product_id in cursor.fetchall():
            found[name].append(product_id)
    return found


def _available(product_ids: Collection[str]) -> set[str]:
    """Those of the ids that may be shown now (active, in stock): one query on the host's
    table, the ids as one array parameter."""
    if not product_ids:
        return set()
    adapter = get_product_adapter()
    shown = adapter.available_queryset().filter(KeyIn(adapter.model, array_literal(product_ids)))
    return {adapter.key(pk) for pk in shown.order_by().values_list("pk", flat=True)}


def unknown_categories(names: Iterable[str]) -> list[str]:
    """The names (any case) in no indexed product's category path, in the order given."""
    wanted = {fold_category(name): name for name in names}
    if not wanted:
        return []
    table = connection.ops.quote_name(ProductDocument._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT name FROM unnest(%s::text[]) AS name WHERE EXISTS "
            f"(SELECT 1 FROM {table} WHERE {_folded('categories')} && {_folded('ARRAY[name]')})",
            [list(wanted)],
        )
        found = {folded for (folded,) in cursor.fetchall()}
    return [name for folded, name in wanted.items() if folded not in found]


def explicit_scope(campaign: Campaign) -> CampaignScope:
    """The products, stores and categories the campaign names itself."""
    return CampaignScope(
        frozenset(campaign.product_ids),
        frozenset(campaign.store_ids),
        frozenset(fold_category(name) for name in campaign.category_names),
    )


def _chosen(campaigns: Sequence[Campaign]) -> dict[int, list[str]]:
    """What each campaign may offer before availability, in offer order, by campaign id: its
    scope's products, or an inventory flash sale's slow sellers among them."""
    scopes = {campaign.pk: explicit_scope(campaign) for campaign in campaigns}
    matching = _matching({pk: scope for pk, scope in scopes.items() if not scope.is_empty})
    chosen = {}
    for campaign in campaigns:
        inventory = campaign.rules.inventory
        within = matching.get(campaign.pk)  # None: the scope is empty
        if inventory is not None:
            chosen[campaign.pk] = slow_sellers(inventory, within=within)
        else:
            chosen[campaign.pk] = within or []
    return chosen


def _sale_products(campaign: Campaign) -> list[str]:
    """A running inventory flash sale's slow sellers: chosen on its first request, stored on
    the campaign and kept while its targeting is the same (`Campaign.offer_digest`). Chosen
    afresh on every request, a product that sells during the sale would leave it."""
    wanted = campaign.offer_digest()
    if campaign.sale_products_digest != wanted:
        chosen = _chosen([campaign])[campaign.pk]
        # An update, not save(): the campaign is not edited (its caches stay valid).
        Campaign.objects.filter(pk=campaign.pk).update(sale_product_ids=chosen, sale_products_digest=wanted)
        campaign.sale_product_ids, campaign.sale_products_digest = chosen, wanted
    return list(campaign.sale_product_ids)


def _candidates(campaigns: Sequence[Campaign]) -> dict[int, list[str]]:
    """`_chosen` of each campaign, cached (the slow part): one read of the cache for them all,
    the missing ones chosen together; except that a running inventory flash sale keeps the
    products it started with (`_sale_products`)."""
    sales = {c.pk: _sale_products(c) for c in campaigns if c.rules.inventory is not None and c.is_running()}
    others = {c.pk: c for c in campaigns if c.pk not in sales}
    chosen = many_from_cache(
        {pk: cache_key(campaign, "candidates") for pk, campaign in others.items()},
        lambda missing: _chosen([others[pk] for pk in missing]),
        CACHE_SECONDS,
    )
    return {c.pk: sales[c.pk] if c.pk in sales else chosen[c.pk] for c in campaigns}


def offers(campaigns: Iterable[Campaign], size: int | None = None) -> dict[int, list[str]]:
    """The first `size` (None: all) available products each campaign shows now, in its offer
    order, by campaign id; for an inventory flash sale, its slow sellers (once it runs, those
    it started with that are still available).

    Stock is read on every call, in one query for all the campaigns, and only as far as needed:
    their first `READ_AHEAD` times `size` products, then `READ_AHEAD` times as many more for
    those that still lack some, until each has `size` or none is left. A page that shows a few
    products of each campaign does not read the stock of a big store's 70,000.
    """
    candidates = _candidates(list(campaigns))
    offered: dict[int, list[str]] = {pk: [] for pk in candidates}
    start, step = 0, READ_AHEAD * size if size else max(map(len, candidates.values()), default=0)
    wanted = [pk for pk, ids in candidates.items() if ids]
    while wanted:
        window = {pk: candidates[pk][start : start + step] for pk in wanted}
        available = _available(set().union(*window.values()))
        for pk, ids in window.items():
            offered[pk].extend(pid for pid in ids if pid in available)
        start, step = start + step, step * READ_AHEAD
        wanted = [
            pk for pk in wanted if len(candidates[pk]) > start and (size is None or len(offered[pk]) < size)
        ]
    return {pk: ids[:size] for pk, ids in offered.items()}


def offer(campaign: Campaign, size: int | None = None) -> list[str]:
    """The first `size` (None: all) available products the campaign shows now; for an
    inventory flash sale, its slow sellers."""
    return offers([campaign], size)[campaign.pk]


def nothing_to_offer(campaign: Campaign) -> str:
    """Why a promotion or flash sale whose `offer` is empty is not shown, and what to do."""
    inventory = campaign.rules.inventory
    if inventory is not None:
        why = (
            "the slow sellers it started with are sold out or inactive"
            if campaign.is_running() and campaign.sale_product_ids
            else f"no available product in its scope has at least {inventory.min_stock} units in stock and "
            f"sold at most {inventory.max_units_sold} in the last {inventory.days} days"
        )
        fix = "Loosen its inventory rule, or add products, categories or stores."
    else:
        why = "its products are sold out or inactive"
        fix = "Restock them, or add products, categories or stores that are available."
    return (
        f"Campaign {campaign.name!r} has nothing to offer now: {why}. Shoppers are not shown it, so "
        f"it has no audience. {fix}"
    )


def interest_scope(campaign: Campaign) -> CampaignScope:
    """What counts as interest in the campaign: its own scope, and for an inventory flash
    sale also the categories of its slow sellers (they rarely sell, so few shoppers touched
    them; shoppers of their categories are the likely buyers)."""
    scope = explicit_scope(campaign)
    if campaign.rules.inventory is None:
        return scope

    def compute() -> CampaignScope:
        adapter = get_product_adapter()
        products = offer(campaign)
        leaves = {
            fold_category(r.category_path[-1])
            for r in adapter.records(adapter.by_keys(products))
            if r.category_path
        }
        return CampaignScope(
            scope.product_ids | frozenset(products), scope.store_ids, scope.categories | leaves
        )

    return _cached(campaign, "interest", compute)


def scope_product_ids(campaign: Campaign) -> list[str]:
    """Every product (available or not) in the campaign's interest scope, for event queries."""
    return _cached(campaign, "scope", lambda: _matching({campaign.pk: interest_scope(campaign)})[campaign.pk])
