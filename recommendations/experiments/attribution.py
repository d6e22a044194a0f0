"""Attribution: the funnel of each variant, from the event log.

The visitors of a variant are its `Assignment`s (users by account, anonymous visitors by
session). Within the experiment's window, for each variant:

- impressions: distinct recommendation ids of impression events of its visitors;
- clicked impressions / clicks: click events carrying one of those recommendation ids;
- add-to-carts: add_to_cart events carrying one of those ids;
- purchases: purchase events of its visitors that carry one of those ids, or that buy a
  product the same visitor clicked in one of its lists within `attribution_window_hours`
  before (shops rarely pass the recommendation id through checkout). Purchases may happen
  up to the window after the experiment stopped.

Everything is counted in one pass over the visitors' events, so a hand-computed scenario
can be checked line by line (see tests/marketing/test_attribution.py).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Q
from django.utils import timezone

from recommendations.experiments.statistics import MeanSummary
from recommendations.models import Assignment, Event, EventType, Experiment

FUNNEL_TYPES = (EventType.IMPRESSION, EventType.CLICK, EventType.ADD_TO_CART, EventType.PURCHASE)


@dataclass
class VariantFunnel:
    """Counts of one variant; `revenue_by_visitor` holds only visitors who bought."""

    variant_id: int
    key: str
    label: str
    is_control: bool
    visitors: int = 0
    impressions: int = 0
    clicked_impressions: int = 0
    clicks: int = 0
    add_to_carts: int = 0
    purchases: int = 0
    revenue: Decimal = Decimal(0)
    revenue_by_visitor: dict[str, Decimal] = field(default_factory=dict)

    @property
    def converted_visitors(self) -> int:
        return len(self.revenue_by_visitor)

    def revenue_summary(self) -> MeanSummary:
        """Revenue per visitor, zeros included, as n / sum / sum of squares."""
        values = [float(v) for v in self.revenue_by_visitor.values()]
        return MeanSummary(self.visitors, sum(values), sum(v * v for v in values))


def experiment_window(
    experiment: Experiment, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """From the start to the stop (or now); purchases are counted up to the window after that."""
    now = now or timezone.now()
    start = experiment.started_at or experiment.created_at
    end = experiment.stopped_at or now
    return start, end


def _visitor_maps(experiment: Experiment) -> tuple[dict[Any, int], dict[str, int], dict[int, int]]:
    by_user: dict[Any, int] = {}
    by_session: dict[str, int] = {}
    visitors: dict[int, int] = defaultdict(int)
    rows = Assignment.objects.filter(experiment=experiment).values_list("variant_id", "user_id", "session_id")
    for variant_id, user_id, session_id in rows.iterator(chunk_size=5000):
        if user_id is not None:
            by_user[user_id] = variant_id
        else:
            by_session[session_id] = variant_id
        visitors[variant_id] += 1
    return by_user, by_session, visitors


def funnels(experiment: Experiment, now: dt.datetime | None = None) -> list[VariantFunnel]:
    """One `VariantFunnel` per variant, the control first."""
    variants = list(experiment.variants.order_by("-is_control", "key"))
    out = {v.pk: VariantFunnel(v.pk, v.key, v.label, v.is_control) for v in variants}
    by_user, by_session, visitors = _visitor_maps(experiment)
    for variant_id, count in visitors.items():
        if variant_id in out:
            out[variant_id].visitors = count
    start, end = experiment_window(experiment, now)
    window = dt.timedelta(hours=experiment.attribution_window_hours)
    assigned = Assignment.objects.filter(experiment=experiment)
    events = (
        Event.objects.filter(event_type__in=FUNNEL_TYPES, timestamp__gte=start, timestamp__lte=end + window)
        .filter(
            Q(user_id__in=assigned.filter(user__isnull=False).values("user_id"))
            | Q(user__isnull=True, session_id__in=assigned.filter(user__isnull=True).values("session_id"))
        )
        .order_by("timestamp", "id")
        .values_list(
            "event_type", "user_id", "session_id", "product_id", "recommendation_id", "timestamp", "revenue"
        )
    )

    shown: dict[int, set[str]] = defaultdict(set)  # recommendation ids each variant showed
    clicked: dict[int, set[str]] = defaultdict(set)
    # (variant, visitor, product) -> time of the latest click on it in one of the variant's lists
    last_click: dict[tuple[int, str, str], dt.datetime] = {}
    for event_type, user_id, session_id, product_id, rec_id, timestamp, revenue in events.iterator(
        chunk_size=5000
    ):
        variant_id = by_user.get(user_id) if user_id is not None else by_session.get(session_id)
        if variant_id not in out:
            continue
        funnel = out[variant_id]
        visitor = f"u:{user_id}" if user_id is not None else f"s:{session_id}"
        in_variant_list = bool(rec_id) and rec_id in shown[variant_id]
        if event_type == EventType.IMPRESSION:
            if rec_id and timestamp <= end:
                shown[variant_id].add(rec_id)
        elif event_type == EventType.CLICK:
            if in_variant_list and timestamp <= end:
                funnel.clicks += 1
                clicked[variant_id].add(rec_id)
                last_click[(variant_id, visitor, product_id)] = timestamp
        elif event_type == EventType.ADD_TO_CART:
            if in_variant_list and timestamp <= end:
                funnel.add_to_carts += 1
        elif event_type == EventType.PURCHASE:
            click_time = last_click.get((variant_id, visitor, product_id))
            after_click = click_time is not None and timestamp - click_time <= window
            if in_variant_list or after_click:
                amount = revenue or Decimal(0)
                funnel.purchases += 1
                funnel.revenue += amount
                funnel.revenue_by_visitor[visitor] = (
                    funnel.revenue_by_visitor.get(visitor, Decimal(0)) + amount
                )
    for variant_id, funnel in out.items():
        funnel.impressions = len(shown[variant_id])
        funnel.clicked_impressions = len(clicked[variant_id])
    return list(out.values())
