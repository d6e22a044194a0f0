"""Store recommendations: stores for a visitor and stores like a store.

Store vectors come from the active model; without one, stores are ranked by the visitor's
recent products and by the popularity of their products. A store is listed only while it has
a product a shopper can buy (the product adapter's `available_queryset()`, read on every
request as products' stock is): a shop does not send shoppers to empty shelves. Otherwise
lists of stores skip the product rules (diversity) but keep exclusions, limits, recording and
reasons.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from django.db.models import Count, Exists, OuterRef, QuerySet, Sum

from recommendations.adapters import get_product_adapter, get_store_adapter
from recommendations.events.preprocessing import event_weight
from recommendations.models import ModelVersion, ProductDocument, ProductPopularity, StoreVector
from recommendations.serving import variants
from recommendations.serving.cache import cached
from recommendations.serving.errors import NotFound, get_store, store_key
from recommendations.serving.history import recent_history
from recommendations.serving.presentation import ShownObjects, store_card
from recommendations.serving.products import EXPLAINED_SHARE
from recommendations.serving.realtime import current_taste
from recommendations.serving.rules import build_result, dedupe, limit_for
from recommendations.serving.types import Audience, Candidate, Kind, Options, RecommendationResult
from recommendations.vectors import queries


def _with_products_to_buy(stores: QuerySet) -> QuerySet:
    """The stores that have an available product, in the same query (a semi-join on the
    products' store column). With no store field the products name no store, so every store
    is kept."""
    adapter = get_product_adapter()
    if not adapter.store_field:
        return stores
    available = adapter.available_queryset().filter(**{adapter.store_field: OuterRef("pk")})
    return stores.filter(Exists(available))


def _finalize(
    kind: str, candidates: list[Candidate], audience: Audience, options: Options, version_id: int | None
) -> RecommendationResult:
    adapter = get_store_adapter()
    if adapter is None:
        raise NotFound("This shop has no stores: set RECOMMENDATIONS['STORE_MODEL'] to recommend them.")
    pool = [c for c in dedupe(candidates) if c.product_id not in options.exclude]
    objects = {
        adapter.key(obj.pk): obj
        for obj in _with_products_to_buy(adapter.index_queryset().filter(pk__in=[c.product_id for c in pool]))
    }
    limit = limit_for(kind, options, audience)
    chosen = [c for c in pool if c.product_id in objects][:limit]
    shown = ShownObjects([c.product_id for c in chosen], card=store_card, key=adapter.key, objects=objects)
    return build_result(
        kind,
        chosen,
        shown,
        audience,
        options,
        model=adapter.model,
        model_version_id=version_id,
        page_unique=False,
    )


def _store_vector(store_id: str, version: ModelVersion) -> np.ndarray | None:
    embedding = (
        queries.vector_rows(StoreVector)
        .filter(model_version_id=version.pk, store_id=store_id)
        .values_list("embedding", flat=True)
        .first()
    )
    return None if embedding is None else np.asarray(embedding, dtype=np.float32)


def _popular_stores(k: int, categories: list[str] | None = None, exclude: str = "") -> list[Candidate]:
    rows = ProductPopularity.objects.exclude(store_id="").exclude(store_id=exclude)
    if categories is not None:
        rows = rows.filter(categories__overlap=categories)
    ranked = rows.values("store_id").annotate(score=Sum("popular_score")).order_by("-score", "store_id")[:k]
    reason = "Sells what this store sells" if categories is not None else "Popular with shoppers"
    return [Candidate(r["store_id"], float(r["score"]), "popular", reason, tier=1) for r in ranked]


def stores_for_user(audience: Audience, options: Options) -> RecommendationResult:
    """Stores this visitor is likely to shop at: those their taste matches, then those whose
    products they touched, then popular ones, then the rest of the nearest to their taste."""
    history = recent_history(audience)
    version = variants.model_version(audience)
    k = limit_for(Kind.STORES, options, audience) * 2 + len(options.exclude)

    def compute() -> list[Candidate]:
        candidates = []
        if version is not None:
            taste = current_taste(version, audience)
            if taste.vector is not None:
                nearest = queries.nearest_stores(taste.vector, k, version)
                # As "for you" decides "because you viewed X": a store matches the visitor's
                # taste when it scores about as well as their best match. The others are not
                # stores they lean towards (a score of 0 is no affinity at all): they say no
                # more than "Picked for you" and come last, after popular stores, which say so.
                best = max((score for _, score in nearest), default=0.0)
                candidates = [
                    Candidate(sid, score, "realtime", "Matches what you like")
                    if score > 0 and score >= EXPLAINED_SHARE * best
                    else Candidate(sid, score, "realtime", "Picked for you", tier=3)
                    for sid, score in nearest
                ]
        # Stores whose products the visitor touched lately, weighted like the events.
        stores = dict(
            ProductDocument.objects.filter(product_id__in=history.product_ids).values_list(
                "product_id", "store_id"
            )
        )
        weights: dict[str, float] = defaultdict(float)
        for event in history.events:
            if stores.get(event.product_id):
                weights[stores[event.product_id]] += event_weight(event.event_type, event.value)
        candidates += [
            Candidate(sid, w, "history", "You looked at products from this store", tier=1)
            for sid, w in weights.items()
            if w > 0
        ]
        if len({c.product_id for c in candidates}) >= k:
            return candidates
        # Shop-wide popularity (an aggregate over every product) is the same for everyone, so
        # it is cached apart from the visitor's list and read only when the list is short.
        popular = cached((Kind.STORES, "popular", k), lambda: _popular_stores(k))
        return candidates + [Candidate(c.product_id, c.score, c.source, c.reason, tier=2) for c in popular]

    key = variants.list_key(Kind.STORES, audience, version, k, history=history)
    return _finalize(Kind.STORES, cached(key, compute), audience, options, version and version.pk)


def similar_stores(store_id: str, audience: Audience, options: Options) -> RecommendationResult:
    """Stores like this one: store-vector neighbours, else stores selling in its categories."""
    # Its key as vectors, documents and exclusions hold it ("7" for "07"), as products' are.
    store_id = store_key(store_id)
    store = get_store(store_id)
    version = variants.model_version(audience)
    k = limit_for(Kind.SIMILAR_STORES, options, audience) * 2 + len(options.exclude)
    name = get_store_adapter().to_record(store).name

    def compute() -> list[Candidate]:
        candidates = []
        seed = _store_vector(store_id, version) if version else None
        if seed is not None:
            # Stores only have an inner-product index; their vectors are ranked like a taste.
            candidates = [
                Candidate(sid, score, "vector", f"Similar to {name}")
                for sid, score in queries.nearest_stores(seed, k, version, exclude=[store_id])
            ]
        # The store's main categories (leaf paths of its products), then who else sells there.
        leaves = (
            ProductDocument.objects.filter(store_id=store_id)
            .exclude(categories=[])
            .values("categories")
            .annotate(n=Count("id"))
            .order_by("-n")[:3]
        )
        categories = [row["categories"][-1] for row in leaves]
        if categories:
            candidates += _popular_stores(k, categories, exclude=store_id)
            sellers = (
                ProductDocument.objects.filter(categories__overlap=categories)
                .exclude(store_id__in=["", store_id])
                .values("store_id")
                .annotate(n=Count("id"))
                .order_by("-n", "store_id")[:k]
            )
            candidates += [
                Candidate(r["store_id"], float(r["n"]), "content", "Sells what this store sells", tier=2)
                for r in sellers
            ]
        popular = _popular_stores(k + 1, exclude=store_id)
        return candidates + [Candidate(c.product_id, c.score, c.source, c.reason, tier=3) for c in popular]

    key = variants.list_key(Kind.SIMILAR_STORES, audience, version, store_id, k)
    result_options = Options(options.limit, options.exclude | {store_id}, options.explain, options.category)
    return _finalize(
        Kind.SIMILAR_STORES, cached(key, compute), audience, result_options, version and version.pk
    )
