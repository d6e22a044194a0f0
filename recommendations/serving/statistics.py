"""Popularity and co-occurrence: the classic recommenders serving falls back on.

`refresh_statistics()` rebuilds `ProductPopularity` (time-decayed scores, repeat-purchase
rates) and `ProductPair` (bought together, viewed together) from events; the pipeline's
periodic task calls it. The read functions turn those tables into candidates. Until the
first refresh, trending is computed from recent events directly, so a new shop still
gets an answer.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from functools import cache

from django.db import connection, transaction
from django.db.models import Case, F, FloatField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Extract, Least, Power
from django.utils import timezone

from recommendations.conf import rec_settings
from recommendations.locks import transaction_lock
from recommendations.models import (
    Event,
    EventType,
    PairKind,
    ProductDocument,
    ProductPair,
    ProductPopularity,
)
from recommendations.progress import Progress
from recommendations.serving.types import Candidate
from recommendations.sql import array_literal

logger = logging.getLogger(__name__)
SECONDS_PER_DAY = 86_400.0
# Half-lives past which a decayed weight is taken as 0.5 ** this (see `decay_expression`).
MAX_HALF_LIVES = 1000.0
# Per shopper, only the latest events of a kind form pairs: bounds the self-join's size.
PAIR_EVENTS_PER_SHOPPER = 50
STATISTICS_LOCK = "recommendations.statistics"


def event_weight_expression() -> Case:
    """SQL for an event's weight: `EVENT_WEIGHTS` by type, `RATING_WEIGHTS` by rating value."""
    whens = [
        When(event_type=EventType.RATING, value=rating, then=Value(float(weight)))
        for rating, weight in rec_settings.RATING_WEIGHTS.items()
    ]
    whens += [
        When(event_type=event_type, then=Value(float(weight)))
        for event_type, weight in rec_settings.EVENT_WEIGHTS.items()
        if event_type != EventType.RATING
    ]
    return Case(*whens, default=Value(0.0), output_field=FloatField())


def decay_expression(now: dt.datetime, half_life_days: float) -> Power:
    """An event's weight halved every `half_life_days` of its age at `now`, in SQL. The
    half-lives are capped (0.5 ** 1000 is nothing already): PostgreSQL's power() raises an
    underflow error past about 1,074 of them, which a wide window over old events reached."""
    age_days = Extract(Value(now) - F("timestamp"), "epoch") / SECONDS_PER_DAY
    half_lives = Least(age_days / Value(float(half_life_days)), Value(MAX_HALF_LIVES))
    return Power(Value(0.5), half_lives, output_field=FloatField())


def decayed_scores(now: dt.datetime | None = None) -> QuerySet:
    """Per product: `trending` (short half-life, recent window) and `popular` (long ones)."""
    now = now or timezone.now()
    weight = event_weight_expression()
    trending_since = now - dt.timedelta(days=rec_settings.TRENDING_WINDOW_DAYS)
    popular_since = now - dt.timedelta(days=rec_settings.POPULAR_WINDOW_DAYS)
    return (
        Event.objects.filter(timestamp__gte=min(trending_since, popular_since), timestamp__lte=now)
        .exclude(product_id="")
        .values("product_id")
        .annotate(
            trending=Sum(
                weight * decay_expression(now, rec_settings.TRENDING_HALF_LIFE_DAYS),
                filter=Q(timestamp__gte=trending_since),
                default=0.0,
            ),
            popular=Sum(
                weight * decay_expression(now, rec_settings.DECAY_HALF_LIFE_DAYS),
                filter=Q(timestamp__gte=popular_since),
                default=0.0,
            ),
        )
    )


# Repeat purchases per product: buyers, the share who bought again, and the median gap in
# days between one buyer's purchases. Buyers are users, or sessions when anonymous.
REPEAT_SQL = """
WITH per_buyer AS (
    SELECT product_id,
           COALESCE(user_id::text, 's:' || session_id) AS buyer,
           COUNT(*) AS n,
           EXTRACT(EPOCH FROM MAX(timestamp) - MIN(timestamp)) / 86400.0 AS span_days
    FROM {events}
    WHERE event_type = %s AND product_id <> ''
    GROUP BY 1, 2
)
SELECT product_id,
       COUNT(*) AS buyers,
       AVG(CASE WHEN n > 1 THEN 1.0 ELSE 0.0 END) AS repeat_rate,
       PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY span_days / (n - 1))
           FILTER (WHERE n > 1) AS repurchase_days
FROM per_buyer
GROUP BY product_id
"""

# Pairs of products the same shopper had (latest PAIR_EVENTS_PER_SHOPPER events of the
# kind) that at least PAIRS_MIN_SHOPPERS shoppers had, scored by cosine of the shopper sets,
# keeping the top PAIRS_PER_PRODUCT per product.
PAIRS_SQL = """
INSERT INTO {pairs} (kind, product_id, other_id, count, score)
WITH latest AS (
    SELECT DISTINCT product_id, shopper FROM (
        SELECT product_id, {shopper} AS shopper,
               ROW_NUMBER() OVER (PARTITION BY {shopper} ORDER BY timestamp DESC) AS rn
        FROM {events}
        WHERE event_type = ANY(%s) AND product_id <> '' AND timestamp >= %s
    ) ranked
    WHERE rn <= %s
),
sizes AS (SELECT product_id, COUNT(*) AS n FROM latest GROUP BY product_id),
together AS (
    SELECT a.product_id, b.product_id AS other_id, COUNT(*) AS n
    FROM latest a JOIN latest b ON a.shopper = b.shopper AND a.product_id <> b.product_id
    GROUP BY 1, 2
    HAVING COUNT(*) >= %s
),
scored AS (
    SELECT t.product_id, t.other_id, t.n,
           t.n / SQRT(sa.n::float * sb.n::float) AS score,
           ROW_NUMBER() OVER (PARTITION BY t.product_id ORDER BY t.n / SQRT(sa.n::float * sb.n::float) DESC,
                              t.other_id) AS rank
    FROM together t
    JOIN sizes sa ON sa.product_id = t.product_id
    JOIN sizes sb ON sb.product_id = t.other_id
)
SELECT %s, product_id, other_id, n, score FROM scored WHERE rank <= %s
"""

PAIR_SOURCES = {
    # Bought together: purchases of one shopper over the popularity window. Only purchases:
    # the server alone records them, while a browser may send cart adds (and take them back),
    # so a script could otherwise make pairs that lists present as what shoppers bought.
    PairKind.BOUGHT: ([EventType.PURCHASE], "COALESCE(user_id::text, 's:' || session_id)"),
    # Viewed together: products looked at in the same session.
    PairKind.VIEWED: ([EventType.VIEW, EventType.CLICK], "session_id"),
}


def refresh_statistics(now: dt.datetime | None = None, progress: Progress | None = None) -> dict[str, int]:
    """Rebuild popularity and pair tables from events; readers see old or new, never half.

    Returns row counts per table. Called by the pipeline's periodic task, `refresh_serving`
    (which passes `progress`: it hears of each table rebuilt) and tests.
    """
    progress = progress or Progress()
    steps = 2 + len(PAIR_SOURCES)  # the scores read, popularity written, each kind of pair
    progress("serving statistics", 0, steps)
    started = time.monotonic()
    now = now or timezone.now()
    scores = {row["product_id"]: row for row in decayed_scores(now)}
    with connection.cursor() as cursor:
        cursor.execute(REPEAT_SQL.format(events=Event._meta.db_table), [EventType.PURCHASE])
        repeats = {row[0]: row[1:] for row in cursor.fetchall()}
    documents = {
        pid: (categories, store_id)
        for pid, categories, store_id in ProductDocument.objects.values_list(
            "product_id", "categories", "store_id"
        ).iterator(chunk_size=10_000)
        if pid in scores
    }
    progress("serving statistics", 1, steps)
    rows = []
    for product_id, row in scores.items():
        buyers, repeat_rate, repurchase_days = repeats.get(product_id, (0, 0.0, None))
        categories, store_id = documents.get(product_id, ([], ""))
        rows.append(
            ProductPopularity(
                product_id=product_id,
                categories=categories,
                store_id=store_id,
                trending_score=row["trending"],
                popular_score=row["popular"],
                buyers=buyers,
                repeat_rate=float(repeat_rate or 0.0),
                repurchase_days=float(repurchase_days) if repurchase_days is not None else None,
            )
        )
    since = now - dt.timedelta(days=rec_settings.POPULAR_WINDOW_DAYS)
    with transaction.atomic():
        # Two refreshes at once (the periodic task and `refresh_serving`) take turns: in READ
        # COMMITTED the second's delete missed the first's new rows, and its insert failed on
        # them. Waiting suits: the turn lasts only the write, and each caller gets its counts.
        transaction_lock(STATISTICS_LOCK)
        ProductPopularity.objects.all().delete()
        ProductPopularity.objects.bulk_create(rows, batch_size=5000)
        progress("serving statistics", 2, steps)
        ProductPair.objects.all().delete()
        with connection.cursor() as cursor:
            for done, (kind, (event_types, shopper)) in enumerate(PAIR_SOURCES.items(), start=3):
                sql = PAIRS_SQL.format(
                    pairs=ProductPair._meta.db_table, events=Event._meta.db_table, shopper=shopper
                )
                cursor.execute(
                    sql,
                    [
                        [str(t) for t in event_types],
                        since,
                        PAIR_EVENTS_PER_SHOPPER,
                        rec_settings.PAIRS_MIN_SHOPPERS,
                        str(kind),
                        rec_settings.PAIRS_PER_PRODUCT,
                    ],
                )
                progress("serving statistics", done, steps)
    counts = {"popularity": len(rows), "pairs": ProductPair.objects.count()}
    logger.info(
        "Refreshed serving statistics: %d products, %d pairs in %.1f s",
        counts["popularity"],
        counts["pairs"],
        time.monotonic() - started,
    )
    if not rows and (hint := history_outside_windows(now)):
        logger.warning(hint)
    return counts


def history_outside_windows(now: dt.datetime | None = None) -> str:
    """Why popularity is empty although events exist: the windows count back from now, so
    imported history older than them (a dataset of past years) makes nothing trending,
    popular or bought together. Empty when there are no events, or some are recent."""
    now = now or timezone.now()
    events = Event.objects.filter(timestamp__lte=now).exclude(product_id="")
    newest = events.order_by("-timestamp").values_list("timestamp", flat=True).first()
    window = max(rec_settings.TRENDING_WINDOW_DAYS, rec_settings.POPULAR_WINDOW_DAYS)
    if newest is None or newest >= now - dt.timedelta(days=window):
        return ""
    return (
        f"No event of the last {window} days (the newest is of {newest:%Y-%m-%d}): trending, "
        "popular and bought-together lists count back from now, so they stay empty until new events "
        "arrive (the model still learns from that history). To serve it, widen "
        'RECOMMENDATIONS["POPULAR_WINDOW_DAYS"] and ["TRENDING_WINDOW_DAYS"] to reach it.'
    )


def trending(
    k: int,
    *,
    category: str | None = None,
    store_id: str | None = None,
    popular: bool = False,
    exclude: Iterable[str] = (),
) -> list[Candidate]:
    """The most popular products lately (or overall with `popular=True`), best first."""
    field = "popular_score" if popular else "trending_score"
    queryset = ProductPopularity.objects.filter(**{f"{field}__gt": 0})
    if category:
        queryset = queryset.filter(categories__contains=[category])
    if store_id:
        queryset = queryset.filter(store_id=store_id)
    excluded = list(exclude)
    if excluded:
        queryset = queryset.exclude(product_id__in=excluded)
    rows = list(queryset.order_by(f"-{field}", "product_id").values_list("product_id", field)[:k])
    if not rows and not ProductPopularity.objects.exists():
        rows = _live_trending(k, category, store_id, excluded, popular)
    source = "popular" if popular else "trending"
    reason = f"Popular in {category}" if category else ("Popular" if popular else "Trending now")
    return [Candidate(pid, float(score), source, reason) for pid, score in rows]


def _live_trending(
    k: int, category: str | None, store_id: str | None, exclude: list[str], popular: bool
) -> list[tuple[str, float]]:
    """Trending straight from events, for a shop whose statistics were never refreshed."""
    queryset = decayed_scores()
    documents = ProductDocument.objects.all()
    if category:
        documents = documents.filter(categories__contains=[category])
    if store_id:
        documents = documents.filter(store_id=store_id)
    if category or store_id:
        queryset = queryset.filter(product_id__in=documents.values("product_id"))
    if exclude:
        queryset = queryset.exclude(product_id__in=exclude)
    field = "popular" if popular else "trending"
    rows = queryset.filter(**{f"{field}__gt": 0}).order_by(f"-{field}", "product_id")
    return [(row["product_id"], row[field]) for row in rows[:k]]


@cache
def _pairs_sql() -> str:
    """The pairs of some seed products, written once: the ORM built and compiled this read
    on every request, which cost more CPU than PostgreSQL spent running it."""
    quote = connection.ops.quote_name
    column = lambda name: quote(ProductPair._meta.get_field(name).column)  # noqa: E731
    return (
        f"SELECT {column('kind')}, {column('product_id')}, {column('other_id')}, {column('score')} "
        f"FROM {quote(ProductPair._meta.db_table)} "
        f"WHERE {column('kind')} = ANY(%s) AND {column('product_id')} = ANY(%s)"
    )


def paired(kind: str, seeds: Mapping[str, float], k: int, *, exclude: Iterable[str] = ()) -> list[Candidate]:
    """Products that go with the weighted `seeds` (item-kNN over the pair table).

    score(j) = sum over seeds i of weight(i) * pair_score(i, j); the reason names the seed
    that contributed most.
    """
    return paired_by_kind([kind], seeds, k, exclude=exclude)[kind]


def paired_by_kind(
    kinds: Sequence[str], seeds: Mapping[str, float], k: int, *, exclude: Iterable[str] = ()
) -> dict[str, list[Candidate]]:
    """`paired` for several kinds of pairs read in one statement (a list that falls back from
    one kind to the next would otherwise read twice)."""
    if not seeds:
        return {kind: [] for kind in kinds}
    skip = set(exclude) | set(seeds)
    with connection.cursor() as cursor:
        cursor.execute(_pairs_sql(), [array_literal(kinds), array_literal(seeds)])
        rows = cursor.fetchall()
    totals: dict[str, dict[str, float]] = {kind: defaultdict(float) for kind in kinds}
    best: dict[str, dict[str, tuple[float, str]]] = {kind: {} for kind in kinds}
    for kind, seed, other, score in rows:
        if other in skip:
            continue
        contribution = seeds[seed] * score
        totals[kind][other] += contribution
        if contribution > best[kind].get(other, (float("-inf"), ""))[0]:
            best[kind][other] = (contribution, seed)
    out = {}
    for kind in kinds:
        ranked = sorted(totals[kind].items(), key=lambda item: (-item[1], item[0]))[:k]
        source = "co_purchase" if kind == PairKind.BOUGHT else "co_view"
        reason = "Bought together with {title}" if kind == PairKind.BOUGHT else "Viewed together with {title}"
        out[kind] = [Candidate(pid, score, source, reason, about=best[kind][pid][1]) for pid, score in ranked]
    return out


def popularity(product_ids: Iterable[str]) -> dict[str, float]:
    """Long-window popularity of the given products (absent: never interacted with)."""
    rows = ProductPopularity.objects.filter(product_id__in=list(product_ids)).values_list(
        "product_id", "popular_score"
    )
    return dict(rows)


def replenishment(product_ids: Iterable[str]) -> dict[str, tuple[float, float | None]]:
    """(repeat rate, median days between purchases) of the given products."""
    rows = ProductPopularity.objects.filter(product_id__in=list(product_ids)).values_list(
        "product_id", "repeat_rate", "repurchase_days"
    )
    return {pid: (rate, days) for pid, rate, days in rows}
