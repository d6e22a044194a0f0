"""How the engine is doing, from the event log: the numbers behind the admin dashboard.

Every figure is computed in PostgreSQL from `Event` rows over a window of days, so the
dashboard needs nothing but the events themselves:

- events per day by type;
- the funnel of each kind of recommendation block: impressions -> clicks -> add to cart ->
  purchases, joined through the recommendation id to the list that was served;
- catalogue coverage: how much of the recommendable catalogue was recommended, clicked,
  bought, and has a vector in the active model;
- top products by purchases and views.

The dashboard shows figures at most a minute old (`recent_overview`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import Decimal

from django.db.models import Count, Func, OuterRef, Q, Subquery, Sum, Value
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from recommendations.adapters import get_product_adapter
from recommendations.models import Event, EventType, ModelStatus, ProductVector, ServedRecommendation
from recommendations.models.marketing import CAMPAIGN_LIST_KIND
from recommendations.serving.cache import from_cache

# The funnel's steps: event type -> the `BlockFunnel` counter it adds to.
FUNNEL_STEPS = {
    EventType.IMPRESSION: "impressions",
    EventType.CLICK: "clicks",
    EventType.ADD_TO_CART: "add_to_carts",
    EventType.PURCHASE: "purchases",
}
EXPIRED_BLOCK = "(served list expired)"
# How long the dashboard shows the figures it computed: they read every event of the window
# (400-500 ms for 30 days at 315,000 events), on every view without this.
RECENT_OVERVIEW_SECONDS = 60


@dataclass(frozen=True)
class DailyCounts:
    """Counts per day (oldest first) for each event type seen in the window."""

    days: list[dt.date]
    counts: dict[str, list[int]]

    @property
    def total(self) -> int:
        return sum(sum(values) for values in self.counts.values())


@dataclass
class BlockFunnel:
    """One recommendation block's funnel over the window."""

    block: str
    impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0
    revenue: Decimal = Decimal(0)

    @property
    def ctr(self) -> float | None:
        """Clicks per impression; None when the block was never shown."""
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion(self) -> float | None:
        """Purchases per click; None when nothing was clicked."""
        return self.purchases / self.clicks if self.clicks else None


@dataclass(frozen=True)
class Coverage:
    """How much of the recommendable catalogue the engine reaches."""

    catalogue: int
    recommended: int
    clicked: int
    purchased: int
    with_vector: int

    def share(self, count: int) -> float:
        return count / self.catalogue if self.catalogue else 0.0


@dataclass(frozen=True)
class TopProduct:
    product_id: str
    title: str
    views: int
    add_to_carts: int
    purchases: int
    revenue: Decimal


@dataclass(frozen=True)
class Overview:
    """Everything the dashboard shows, for one window."""

    since: dt.datetime
    days: int
    daily: DailyCounts
    funnels: list[BlockFunnel]
    coverage: Coverage
    top_products: list[TopProduct]
    totals: dict[str, int] = field(default_factory=dict)
    computed_at: dt.datetime = field(default_factory=timezone.now)


def window_start(days: int, now: dt.datetime | None = None) -> dt.datetime:
    """Midnight (in the current time zone) `days - 1` days ago, so the window holds `days` whole days."""
    if days < 1:
        raise ValueError(f"The window must be at least one day, got {days}.")
    now = timezone.localtime(now or timezone.now())
    start = now.replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(days=days - 1)
    return start


def events_per_day(since: dt.datetime, days: int) -> DailyCounts:
    """Event counts per calendar day and type; days without events count zero."""
    first = timezone.localdate(since)
    day_list = [first + dt.timedelta(days=i) for i in range(days)]
    rows = (
        Event.objects.filter(timestamp__gte=since)
        .annotate(day=TruncDate("timestamp", tzinfo=timezone.get_current_timezone()))
        .values("day", "event_type")
        .annotate(n=Count("id"))
    )
    index = {day: i for i, day in enumerate(day_list)}
    counts: dict[str, list[int]] = {}
    for row in rows:
        if row["day"] in index:
            counts.setdefault(row["event_type"], [0] * days)[index[row["day"]]] = row["n"]
    # Types in the order EventType declares them, so colours and legends stay stable.
    ordered = {t: counts[t] for t in EventType.values if t in counts}
    return DailyCounts(days=day_list, counts=ordered)


def block_funnels(since: dt.datetime) -> list[BlockFunnel]:
    """Impressions -> clicks -> add to cart -> purchases for each kind of block, most shown first.

    Every event that carries a recommendation id is credited to the kind of list that id was
    served as (`ServedRecommendation.kind`); ids whose served row has expired are grouped
    under `EXPIRED_BLOCK`.
    """
    served_kind = Subquery(
        ServedRecommendation.objects.filter(pk=OuterRef("recommendation_id")).values("kind")[:1]
    )
    rows = (
        Event.objects.filter(event_type__in=FUNNEL_STEPS, timestamp__gte=since)
        .exclude(recommendation_id="")
        .annotate(block=Coalesce(served_kind, Value(EXPIRED_BLOCK)))
        .values("block", "event_type")
        .annotate(n=Count("id"), revenue=Sum("revenue"))
    )
    funnels: dict[str, BlockFunnel] = {}
    for row in rows:
        funnel = funnels.setdefault(row["block"], BlockFunnel(row["block"]))
        setattr(
            funnel,
            FUNNEL_STEPS[row["event_type"]],
            getattr(funnel, FUNNEL_STEPS[row["event_type"]]) + row["n"],
        )
        if row["event_type"] == EventType.PURCHASE:
            funnel.revenue += row["revenue"] or Decimal(0)
    return sorted(funnels.values(), key=lambda f: (-f.impressions, f.block))


def catalogue_coverage(since: dt.datetime) -> Coverage:
    """Distinct recommendable products recommended, clicked, bought, and embedded."""
    catalogue = get_product_adapter().available_queryset().count()

    def distinct_products(event_type: str) -> int:
        return (
            Event.objects.filter(event_type=event_type, timestamp__gte=since)
            .exclude(product_id="")
            .values("product_id")
            .distinct()
            .count()
        )

    # A served list holds its products in an array; unnest them in PostgreSQL. Lists of
    # campaigns hold campaigns.
    recommended = (
        ServedRecommendation.objects.filter(created_at__gte=since)
        .exclude(kind=CAMPAIGN_LIST_KIND)
        .annotate(item=Func("product_ids", function="unnest"))
        .values("item")
        .distinct()
        .count()
    )
    with_vector = ProductVector.objects.filter(model_version__status=ModelStatus.ACTIVE).count()
    return Coverage(
        catalogue=catalogue,
        recommended=min(recommended, catalogue),
        clicked=distinct_products(EventType.CLICK),
        purchased=distinct_products(EventType.PURCHASE),
        with_vector=min(with_vector, catalogue),
    )


def top_products(since: dt.datetime, limit: int = 10) -> list[TopProduct]:
    """The most bought products of the window (then the most viewed), with their titles."""
    rows = list(
        Event.objects.filter(timestamp__gte=since)
        .exclude(product_id="")
        .values("product_id")
        .annotate(
            views=Count("id", filter=Q(event_type=EventType.VIEW)),
            add_to_carts=Count("id", filter=Q(event_type=EventType.ADD_TO_CART)),
            purchases=Count("id", filter=Q(event_type=EventType.PURCHASE)),
            revenue=Sum("revenue", filter=Q(event_type=EventType.PURCHASE)),
        )
        .filter(Q(views__gt=0) | Q(purchases__gt=0))
        .order_by("-purchases", "-views", "product_id")[:limit]
    )
    adapter = get_product_adapter()
    # The title alone: a whole record read each product's category, one query a product.
    titles = {
        adapter.key(obj.pk): adapter.get_title(obj)
        for obj in adapter.by_keys(row["product_id"] for row in rows)
    }
    return [
        TopProduct(
            product_id=row["product_id"],
            title=titles.get(row["product_id"], f"(deleted product {row['product_id']})"),
            views=row["views"],
            add_to_carts=row["add_to_carts"],
            purchases=row["purchases"],
            revenue=row["revenue"] or Decimal(0),
        )
        for row in rows
    ]


def overview(days: int = 30, now: dt.datetime | None = None) -> Overview:
    """The dashboard's figures for the last `days` days."""
    since = window_start(days, now)
    window = Event.objects.filter(timestamp__gte=since)
    totals = window.aggregate(
        events=Count("id"),
        users=Count("user", distinct=True),
        sessions=Count("session_id", distinct=True, filter=~Q(session_id="")),
        purchases=Count("id", filter=Q(event_type=EventType.PURCHASE)),
    )
    return Overview(
        since=since,
        days=days,
        daily=events_per_day(since, days),
        funnels=block_funnels(since),
        coverage=catalogue_coverage(since),
        top_products=top_products(since),
        totals=totals,
    )


def recent_overview(days: int) -> Overview:
    """`overview(days)`, computed at most once per `RECENT_OVERVIEW_SECONDS` for each window
    and time zone (in Django's default cache, shared by the processes where it is)."""
    key = f"recommendations:dashboard:{days}:{timezone.get_current_timezone_name()}"
    return from_cache(key, lambda: overview(days), RECENT_OVERVIEW_SECONDS)
