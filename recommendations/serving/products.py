"""Product recommendations, one function per type.

Each function gathers candidates from the active model's vectors when there is one and
from the classic recommenders (co-occurrence, popularity) otherwise or to fill in, then
hands them to `rules.finalize()`. They never fail for lack of a model or of data: the last
fallback is trending products.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import replace

from django.contrib.postgres.search import TrigramSimilarity
from django.template.defaultfilters import pluralize
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.events.preprocessing import event_weight
from recommendations.models import EventType, ListKind, ModelVersion, PairKind, ProductDocument
from recommendations.serving import statistics, variants
from recommendations.serving.cache import cached
from recommendations.serving.errors import product_key, store_key, valid_product_ids
from recommendations.serving.history import History, purchases, recent_history, viewed_products
from recommendations.serving.realtime import Taste, current_taste
from recommendations.serving.rules import MAX_LIMIT, close_matches, finalize, pool_size, rules_for
from recommendations.serving.types import Audience, Candidate, Kind, Options, RecommendationResult
from recommendations.vectors import lists, queries

VERBS = {
    EventType.PURCHASE: "bought",
    EventType.ADD_TO_CART: "added {title} to your cart",
    EventType.FAVOURITE: "saved",
    EventType.RATING: "rated",
}


# A product is explained by the recent product it is most like when its cosine to it is at
# least this share of the likest product's in the list (the rest read "Picked for you").
EXPLAINED_SHARE = 0.6


def _because(event_type: str) -> str:
    verb = VERBS.get(event_type, "viewed")
    return f"Because you {verb}" + ("" if "{title}" in verb else " {title}")


def _seed_weights(history: History) -> dict[str, float]:
    """Weight of each recently touched product, for co-occurrence (item-kNN) scoring."""
    seeds: dict[str, float] = {}
    for rank, event in enumerate(history.events):
        seeds[event.product_id] = seeds.get(event.product_id, 0.0) + event_weight(
            event.event_type, event.value
        ) / (1 + rank)
    return {pid: w for pid, w in seeds.items() if w > 0}


def _vector_candidates(
    version: ModelVersion, taste: Taste, history: History, k: int, audience: Audience, explain: bool
) -> list[Candidate]:
    last_type = {e.product_id: e.event_type for e in reversed(history.events)}
    source = {"stored": version.algorithm, "session": "session", "realtime": "realtime"}[taste.basis]
    wanted = k + len(last_type)
    if taste.ranked and lists.has_lists(version, ListKind.FOR_USER, wanted):
        rows = taste.ranked[:wanted]  # precomputed: every product, or at least `wanted`
    else:
        rows = queries.nearest_products(taste.vector, wanted, version)
    # The neighbours' own vectors name the recent product each one is closest to (explain)
    # and feed MMR; otherwise they are not fetched.
    ids = [pid for pid, _ in rows]
    embeddings = (
        {pid: v.embedding for pid, v in queries.product_vectors(ids, version).items()}
        if explain and taste.history_vectors
        else _embeddings_for_mmr(Kind.FOR_YOU, ids, version, audience)
    )
    closest = {pid: taste.closest_history_item(v) for pid, v in embeddings.items() if v is not None}
    # "Because you viewed X" only for products about as like X as the list's likest one: the
    # taste's nearest products also hold some that are not like anything the visitor touched.
    likest = max((found[1] for found in closest.values() if found), default=0.0)
    out = []
    for pid, score in rows:
        found = closest.get(pid)
        about = found[0] if found and found[1] >= EXPLAINED_SHARE * likest else None
        reason = _because(last_type[about]) if about else "Picked for you"
        out.append(Candidate(pid, score, source, reason, about=about, embedding=embeddings.get(pid)))
    return out


def _embeddings_for_mmr(kind: str, ids: list[str], version: ModelVersion, audience: Audience) -> dict:
    """Vectors of the candidates, fetched only when the type's rules diversify with MMR."""
    if rules_for(kind, audience).get("mmr_lambda") is None:
        return {}
    return {pid: v.embedding for pid, v in queries.product_vectors(ids, version).items()}


def _classic_candidates(history: History, k: int) -> list[Candidate]:
    seeds = _seed_weights(history)
    pairs = statistics.paired_by_kind([PairKind.BOUGHT, PairKind.VIEWED], seeds, k)
    return pairs[PairKind.BOUGHT] + pairs[PairKind.VIEWED]


def _cascade(k: int, *sources: Callable[[], list[Candidate]]) -> list[Candidate]:
    """Candidates from each source in turn, each a tier below the last.

    Fallback sources cost queries, so they run only when the better ones came up short: the
    pool `k` is `rules.OVERFETCH` times what is shown, and half of it is taken as enough.
    """
    out: list[Candidate] = []
    for tier, source in enumerate(sources):
        if len({c.product_id for c in out}) >= k // 2:
            break
        for candidate in source():
            candidate.tier = tier
            out.append(candidate)
    return out


def for_you(audience: Audience, options: Options) -> RecommendationResult:
    """ "Recommended for you": the real-time taste vector's nearest products.

    Without a model (or for a visitor with no vector and no history) it falls back to
    co-occurrence with the session's products, then trending. An experiment's variant may
    choose the source instead: "popular" (trending only), "cooccurrence" (the classic
    recommender, no vectors) or "two_tower" (the default cascade).
    """
    history = recent_history(audience)
    recommender = variants.recommender(audience)
    # Only the default (two-tower) source reads vectors; the lists of the others name no version.
    classic = recommender in (variants.POPULAR, variants.COOCCURRENCE)
    version = None if classic else variants.model_version(audience)
    k = pool_size(Kind.FOR_YOU, options, audience)

    def personal() -> list[Candidate]:
        if version is not None:
            taste = current_taste(version, audience)
            if taste.vector is not None:
                return _vector_candidates(version, taste, history, k, audience, options.explain)
        return _classic_candidates(history, k)

    def compute() -> list[Candidate]:
        popular = (lambda: statistics.trending(k), lambda: _newest(k))
        return _cascade(k, *popular) if recommender == variants.POPULAR else _cascade(k, personal, *popular)

    key = variants.list_key(Kind.FOR_YOU, audience, version, k, options.explain, history=history)
    return finalize(
        Kind.FOR_YOU,
        cached(key, compute),
        audience,
        options,
        model_version_id=version and version.pk,
        exclude=history.product_ids,
        backfill=lambda: _popular(k),
    )


def _seed_document(product_id: str) -> ProductDocument | None:
    """What content similarity needs of a product: its title and categories."""
    documents = ProductDocument.objects.filter(product_id=product_id)
    return documents.only("product_id", "title", "categories").first()


def _category_of(seed: ProductDocument | None) -> str | None:
    """The product's own (deepest) category."""
    return seed.categories[-1] if seed and seed.categories else None


def _content_candidates(seed: ProductDocument | None, k: int) -> list[Candidate]:
    """Products of the seed's category with the most similar titles (trigram similarity).

    A title that shares no trigram with the seed's is not like it: such products are left to
    the fallbacks (the category's popular products), whose reasons say why they are there."""
    if seed is None:
        return []
    rows = (
        ProductDocument.objects.filter(categories=seed.categories)
        .exclude(product_id=seed.product_id)
        .annotate(similarity=TrigramSimilarity("title", seed.title))
        .filter(similarity__gt=0)
        .order_by("-similarity", "product_id")
        .values_list("product_id", "similarity")[:k]
    )
    return [
        Candidate(pid, float(sim), "content", "Similar to {title}", about=seed.product_id)
        for pid, sim in rows
    ]


def _vector_neighbours(
    kind: str, product_id: str, k: int, version: ModelVersion | None, audience: Audience
) -> list[Candidate]:
    """The product's nearest vectors, blended with their titles' similarity to its title
    (`lists.similar_score`): from its precomputed list, else an index search (k rows, not a
    category scan); [] without a model or a vector for the product. `kind`: the list they
    are for, whose rules say whether MMR needs their vectors."""
    if version is None:
        return []
    neighbours = lists.similar(product_id, k, version)
    if neighbours is None:
        neighbours = [
            (pid, lists.similar_score(cosine, float(title_similarity)))
            for pid, cosine, title_similarity in queries.similar_products_with_titles(product_id, k, version)
        ]
    if not neighbours:
        return []
    embeddings = _embeddings_for_mmr(kind, [pid for pid, _ in neighbours], version, audience)
    return [
        Candidate(pid, score, "vector", "Similar to {title}", product_id, embeddings.get(pid))
        for pid, score in neighbours
    ]


def similar(product_id: str, audience: Audience, options: Options) -> RecommendationResult:
    """Products like this one: vector neighbours blended with title similarity in its category."""
    product_id = product_key(product_id)
    version = variants.model_version(audience)
    k = pool_size(Kind.SIMILAR, options, audience)

    def compute() -> list[Candidate]:
        neighbours = _vector_neighbours(Kind.SIMILAR, product_id, k, version, audience)
        if neighbours:
            return neighbours
        seed = _seed_document(product_id)
        return _cascade(
            k,
            lambda: _content_candidates(seed, k),
            lambda: statistics.paired(PairKind.VIEWED, {product_id: 1.0}, k),
            lambda: statistics.trending(k, category=_category_of(seed)),
        )

    key = variants.list_key(Kind.SIMILAR, audience, version, product_id, k)
    return finalize(
        Kind.SIMILAR,
        cached(key, compute),
        audience,
        options,
        model_version_id=version and version.pk,
        seed=product_id,
        context={"product_id": product_id},
        backfill=lambda: _popular_like(product_id, k),
    )


def _popular_like(product_id: str, k: int) -> list[Candidate]:
    """Trending in the product's own category: what fills a product page's list."""
    return cached(
        (Kind.TRENDING, "like", product_id, k), lambda: _popular(k, _category_of(_seed_document(product_id)))
    )


def bought_together(product_id: str, audience: Audience, options: Options) -> RecommendationResult:
    """Frequently bought together (co-purchase), then viewed together, then similar products.

    The last tier is the vector neighbours when a model is active (an index scan), else the
    titles most like this one in its category (a scan of the category). They are "Similar to"
    this product, so only close matches are taken, as "similar" takes them (its
    `min_relative_score`); the category's popular products fill the rest, saying so.
    """
    product_id = product_key(product_id)
    version = variants.model_version(audience)
    k = pool_size(Kind.BOUGHT_TOGETHER, options, audience)

    def alike() -> list[Candidate]:
        neighbours = _vector_neighbours(Kind.BOUGHT_TOGETHER, product_id, k, version, audience)
        neighbours = neighbours or _content_candidates(_seed_document(product_id), k)
        return close_matches(neighbours, rules_for(Kind.SIMILAR, audience).get("min_relative_score"))

    def compute() -> list[Candidate]:
        pairs = statistics.paired_by_kind([PairKind.BOUGHT, PairKind.VIEWED], {product_id: 1.0}, k)
        return _cascade(k, lambda: pairs[PairKind.BOUGHT], lambda: pairs[PairKind.VIEWED], alike)

    key = variants.list_key(Kind.BOUGHT_TOGETHER, audience, version, product_id, k)
    return finalize(
        Kind.BOUGHT_TOGETHER,
        cached(key, compute),
        audience,
        options,
        seed=product_id,
        context={"product_id": product_id},
        # The pairs may all come from one store, which its cap thins out: like products, then
        # the category's popular ones fill the shelf (kept like the list: a short list is
        # short on every request). A tier below the like products, the popular ones follow
        # even those the cap holds back.
        backfill=lambda: cached(
            (*key, "backfill"),
            lambda: [*alike(), *(replace(c, tier=c.tier + 1) for c in _popular_like(product_id, k))],
        ),
    )


def trending(audience: Audience, options: Options) -> RecommendationResult:
    """Trending now (time-decayed popularity), overall or within `options.category`."""
    k = pool_size(Kind.TRENDING, options, audience)
    candidates = _popular(k, options.category)
    return finalize(Kind.TRENDING, candidates, audience, options, context={"category": options.category})


def _popular(k: int, category: str | None = None) -> list[Candidate]:
    """Trending (overall or in `category`), then the newest products: the trending list, and
    what fills a personal list that the rules left short."""
    return cached(
        (Kind.TRENDING, category, k),
        # A shop with no events yet shows its newest products rather than nothing.
        lambda: _cascade(k, lambda: statistics.trending(k, category=category), lambda: _newest(k, category)),
    )


def _newest(k: int, category: str | None = None) -> list[Candidate]:
    """The k newest products (recency in (0, 1] as the score): also the last-resort fill."""
    documents = ProductDocument.objects.filter(created_at__isnull=False)
    if category:
        documents = documents.filter(categories__contains=[category])
    now = timezone.now()
    reason = f"New in {category}" if category else "Just arrived"
    rows = documents.order_by("-created_at", "product_id").values_list("product_id", "created_at")[:k]
    return [
        Candidate(pid, 1.0 / (1.0 + max((now - created).total_seconds(), 0) / 86_400), "new", reason)
        for pid, created in rows
    ]


def new_arrivals(audience: Audience, options: Options) -> RecommendationResult:
    """The newest products, overall or within `options.category`."""
    k = pool_size(Kind.NEW_ARRIVALS, options, audience)
    candidates = cached((Kind.NEW_ARRIVALS, options.category, k), lambda: _newest(k, options.category))
    return finalize(Kind.NEW_ARRIVALS, candidates, audience, options, context={"category": options.category})


def recently_viewed(audience: Audience, options: Options) -> RecommendationResult:
    """What the visitor looked at lately, most recent first (read fresh, never cached)."""
    views = viewed_products(audience, pool_size(Kind.RECENTLY_VIEWED, options, audience))
    candidates = [
        Candidate(pid, 1.0 / (rank + 1), "history", "You viewed this recently")
        for rank, pid in enumerate(views)
    ]
    return finalize(Kind.RECENTLY_VIEWED, candidates, audience, options)


def buy_again(audience: Audience, options: Options) -> RecommendationResult:
    """Replenishable products the visitor bought, those due for a restock first.

    A product is replenishable when enough of its buyers rebuy it (`repeat_rate`) or this
    visitor already did. The score peaks when the time since their last purchase equals the
    product's usual gap between purchases.
    """
    bought = purchases(audience)
    counts = Counter(e.product_id for e in bought)
    last = {}
    for event in bought:  # newest first
        last.setdefault(event.product_id, event.timestamp)
    stats = statistics.replenishment(counts)
    now = timezone.now()
    candidates = []
    for pid, when in last.items():
        rate, gap_days = stats.get(pid, (0.0, None))
        if rate < rec_settings.REPLENISHABLE_MIN_REPEAT_RATE and counts[pid] < 2:
            continue
        days = max((now - when).total_seconds() / 86_400, 0.01)
        due = math.exp(-abs(math.log(days / gap_days))) if gap_days else 0.5
        ago = int(days)
        reason = f"You bought this {ago} day{pluralize(ago)} ago" if ago else "You bought this today"
        candidates.append(Candidate(pid, due * (1 + rate), "buy_again", reason))
    return finalize(Kind.BUY_AGAIN, candidates, audience, options)


def store_products(store_id: str, audience: Audience, options: Options) -> RecommendationResult:
    """One store's products for this visitor: by taste when known, else popular, else newest."""
    store_id = store_key(store_id)
    history = recent_history(audience)
    version = variants.model_version(audience)
    k = pool_size(Kind.STORE_PRODUCTS, options, audience)
    in_store = ProductDocument.objects.filter(store_id=store_id).values("product_id")

    def personal() -> list[Candidate]:
        taste = current_taste(version, audience) if version is not None else None
        if taste is None or taste.vector is None:
            return []
        return [
            Candidate(pid, score, "realtime", "Picked for you")
            for pid, score in queries.nearest_products(taste.vector, k, version, store_id=store_id)
        ]

    def newest() -> list[Candidate]:
        ids = in_store.order_by("-created_at").values_list("product_id", flat=True)[:k]
        return [Candidate(pid, 0.0, "new", "New in this store") for pid in ids]

    def compute() -> list[Candidate]:
        return _cascade(k, personal, lambda: statistics.trending(k, store_id=store_id, popular=True), newest)

    key = variants.list_key(Kind.STORE_PRODUCTS, audience, version, store_id, k, history=history)
    return finalize(
        Kind.STORE_PRODUCTS,
        cached(key, compute),
        audience,
        options,
        model_version_id=version and version.pk,
        store_id=store_id,
        context={"store_id": store_id},
    )


def rerank(product_ids: list[str], audience: Audience, options: Options) -> RecommendationResult:
    """The given products in the order this visitor is most likely to want them.

    With a model: the real-time taste score. Without: co-occurrence with the visitor's
    history plus popularity. Products without a score keep their given order, after the rest.
    """
    ids = valid_product_ids(product_ids)
    history = recent_history(audience)
    version = variants.model_version(audience)
    scores: dict[str, float] = {}
    reasons: dict[str, str] = {}
    source = "popular"
    if version is not None:
        taste = current_taste(version, audience)
        if taste.vector is not None:
            source = "realtime"
            scores = {
                pid: float(v.embedding @ taste.vector) + v.bias
                for pid, v in queries.product_vectors(ids, version).items()
            }
    if not scores:
        related = statistics.paired(PairKind.VIEWED, _seed_weights(history), MAX_LIMIT * 10)
        affinity = {c.product_id: c.score for c in related}
        popular = statistics.popularity(ids)
        top = max(popular.values(), default=0.0) or 1.0
        scores = {
            pid: affinity.get(pid, 0.0) + popular.get(pid, 0.0) / top
            for pid in ids
            if pid in popular or pid in affinity
        }
        # Nothing the visitor did ranks these: they are in the order of their popularity.
        reasons = {pid: "Popular with shoppers" for pid in scores if pid not in affinity}
    candidates = [
        Candidate(pid, scores[pid], source, reasons.get(pid, "Ranked for you"))
        if pid in scores
        # Unscored products keep their given order, after the scored ones.
        else Candidate(pid, -float(rank), "given", "", tier=1)
        for rank, pid in enumerate(ids)
    ]
    limited = Options(
        options.limit or min(len(ids), MAX_LIMIT), options.exclude, options.explain, options.category
    )
    return finalize(Kind.RERANK, candidates, audience, limited, model_version_id=version and version.pk)
