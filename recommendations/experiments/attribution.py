"""Attribution: the funnel of each variant, from the event log.

The visitors of a variant are its `Assignment`s (users by account, anonymous visitors by
session). A session whose events were merged into an account at login (or that went on
after it) is that person: it is not counted again, and an account with no assignment of
its own takes the session's variant. Within the experiment's window, for each variant:

- impressions: distinct recommendation ids of impression events of its lists;
- clicked impressions / clicks: click events carrying one of those recommendation ids;
- add-to-carts: add_to_cart events carrying one of those ids;
- purchases: purchase events that carry one of those ids, or that buy a product the same
  visitor clicked in one of its lists within `attribution_window_hours` before (shops rarely
  pass the recommendation id through checkout). Purchases may happen up to the window after
  the experiment stopped.

A list belongs to the variant that served it, as its `ServedRecommendation.context` records,
whoever the visitor is bucketed into later (a sign-in may move them to another variant).
A list served outside this experiment (its row names no variant of it: shown before the
visitor had a session to bucket, before the start, under a promoted default or another
experiment) belongs to no variant: its events are not the treatment's. Only an event whose
list is unknown (no id, or the served row has expired) goes to the visitor's variant.

A person whom a variant credits with an event is one of its visitors even when they are
bucketed into another, so no variant counts more buyers than visitors (the conversion's
Wilson interval needs buyers <= visitors); such a person, rare, is then a visitor of both
variants.

Everything is counted in one pass over the visitors' events, so a hand-computed scenario
can be checked line by line (see tests/marketing/test_attribution.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import Case, CharField, OuterRef, Q, Subquery, Value, When
from django.db.models.fields.json import KT
from django.utils import timezone

from recommendations.experiments.statistics import MeanSummary, RatioSummary
from recommendations.models import Assignment, Event, EventType, Experiment, ServedRecommendation

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
    # Lists shown to each visitor, and how many of them they clicked: visitors, not lists,
    # are randomised, so click-through's variance is measured per visitor.
    lists_by_visitor: Counter[str] = field(default_factory=Counter)
    clicked_by_visitor: Counter[str] = field(default_factory=Counter)

    @property
    def converted_visitors(self) -> int:
        return len(self.revenue_by_visitor)

    def revenue_summary(self) -> MeanSummary:
        """Revenue per visitor, zeros included, as n / sum / sum of squares."""
        values = [float(v) for v in self.revenue_by_visitor.values()]
        return MeanSummary(self.visitors, sum(values), sum(v * v for v in values))

    def ctr_summary(self) -> RatioSummary:
        """Clicked lists over lists shown, summed per visitor who was shown one."""
        return RatioSummary.of([(self.clicked_by_visitor[v], n) for v, n in self.lists_by_visitor.items()])


def experiment_window(
    experiment: Experiment, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """From the start to the stop (or now); purchases are counted up to the window after that."""
    now = now or timezone.now()
    start = experiment.started_at or experiment.created_at
    end = experiment.stopped_at or now
    return start, end


@dataclass
class _Visitors:
    """Who is in the experiment, and in which variant (ids), each person counted once."""

    by_user: dict[Any, int] = field(default_factory=dict)
    by_session: dict[str, int] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    # Accounts with no assignment of their own that took their session's.
    signed_in_users: set[Any] = field(default_factory=set)

    def variant_of(self, user_id: Any, session_id: str) -> int | None:
        return self.by_user.get(user_id) if user_id is not None else self.by_session.get(session_id)


def _visitors(experiment: Experiment, start: dt.datetime, end: dt.datetime) -> _Visitors:
    """The assignments, with each anonymous session that signed in counted as its account.

    Login merges the session's events into the account (`merge_session_into_user`), so
    an assigned session with events of a user between `start` and `end` is that user: not a
    second visitor when the account has an assignment too, else the account's assignment.
    """
    visitors = _Visitors()
    rows = Assignment.objects.filter(experiment=experiment).values_list("variant_id", "user_id", "session_id")
    for variant_id, user_id, session_id in rows.iterator(chunk_size=5000):
        if user_id is not None:
            visitors.by_user[user_id] = variant_id
        else:
            visitors.by_session[session_id] = variant_id
        visitors.counts[variant_id] += 1
    signed_in = (
        Event.objects.filter(
            timestamp__gte=start,
            timestamp__lte=end,
            user__isnull=False,
            session_id__in=Assignment.objects.filter(experiment=experiment, user__isnull=True).values(
                "session_id"
            ),
        )
        .values_list("session_id", "user_id")
        .distinct()
    )
    for session_id, user_id in signed_in.iterator(chunk_size=5000):
        variant_id = visitors.by_session.pop(session_id, None)
        if variant_id is None:  # a session that signed in to two accounts: one of them keeps it
            continue
        if user_id in visitors.by_user:
            visitors.counts[variant_id] -= 1
        else:
            visitors.by_user[user_id] = variant_id
            visitors.signed_in_users.add(user_id)
    return visitors


def funnels(experiment: Experiment, now: dt.datetime | None = None) -> list[VariantFunnel]:
    """One `VariantFunnel` per variant, the control first."""
    variants = list(experiment.variants.order_by("-is_control", "key"))
    out = {v.pk: VariantFunnel(v.pk, v.key, v.label, v.is_control) for v in variants}
    by_key = {v.key: v.pk for v in variants}
    start, end = experiment_window(experiment, now)
    window = dt.timedelta(hours=experiment.attribution_window_hours)
    visitors = _visitors(experiment, start, end + window)
    for variant_id, count in visitors.counts.items():
        if variant_id in out:
            out[variant_id].visitors = count
    assigned = Assignment.objects.filter(experiment=experiment)
    # The variant that served the event's list, "" for a list served outside this experiment,
    # None for no row: one index look-up per event, in the same query.
    served_by = (
        ServedRecommendation.objects.filter(pk=OuterRef("recommendation_id"))
        .annotate(
            variant=Case(
                When(context__experiment=experiment.key, then=KT("context__variant")),
                default=Value(""),
                output_field=CharField(),
            )
        )
        .values_list("variant")[:1]
    )
    events = (
        Event.objects.filter(event_type__in=FUNNEL_TYPES, timestamp__gte=start, timestamp__lte=end + window)
        .filter(
            Q(user_id__in=assigned.filter(user__isnull=False).values("user_id"))
            | Q(user_id__in=visitors.signed_in_users)
            | Q(session_id__in=assigned.filter(user__isnull=True).values("session_id"))
        )
        .annotate(served_variant=Subquery(served_by))
        .order_by("timestamp", "id")
        .values_list(
            "event_type",
            "user_id",
            "session_id",
            "product_id",
            "recommendation_id",
            "timestamp",
            "revenue",
            "served_variant",
        )
    )

    # The recommendation ids each variant showed, with the visitor each was shown to.
    shown: dict[int, dict[str, str]] = defaultdict(dict)
    # Visitors a variant credits with an event who are bucketed into another (or none).
    guests: dict[int, set[str]] = defaultdict(set)
    clicked: dict[int, set[str]] = defaultdict(set)
    # (visitor, product) -> (time, variant) of the latest click on it in a variant's list
    last_click: dict[tuple[str, str], tuple[dt.datetime, int]] = {}
    for event_type, user_id, session_id, product_id, rec_id, timestamp, revenue, served in events.iterator(
        chunk_size=5000
    ):
        visitor = f"u:{user_id}" if user_id is not None else f"s:{session_id}"
        own_variant = visitors.variant_of(user_id, session_id)
        variant_id = own_variant if served is None else by_key.get(served)
        if event_type == EventType.PURCHASE and not (
            rec_id and variant_id in out and rec_id in shown[variant_id]
        ):
            # Bought without a list's id: the variant of the list it was clicked in, if recently.
            click_time, variant_id = last_click.get((visitor, product_id), (None, None))
            if click_time is None or timestamp - click_time > window:
                continue
        if variant_id not in out:
            continue
        funnel = out[variant_id]
        in_variant_list = bool(rec_id) and rec_id in shown[variant_id]
        credited = True
        if event_type == EventType.IMPRESSION:
            credited = bool(rec_id) and timestamp <= end
            if credited and not in_variant_list:
                shown[variant_id][rec_id] = visitor
                funnel.lists_by_visitor[visitor] += 1
        elif event_type == EventType.CLICK:
            credited = in_variant_list and timestamp <= end
            if credited:
                funnel.clicks += 1
                if rec_id not in clicked[variant_id]:
                    clicked[variant_id].add(rec_id)
                    funnel.clicked_by_visitor[shown[variant_id][rec_id]] += 1
                last_click[(visitor, product_id)] = (timestamp, variant_id)
        elif event_type == EventType.ADD_TO_CART:
            credited = in_variant_list and timestamp <= end
            if credited:
                funnel.add_to_carts += 1
        elif event_type == EventType.PURCHASE:
            amount = revenue or Decimal(0)
            funnel.purchases += 1
            funnel.revenue += amount
            funnel.revenue_by_visitor[visitor] = funnel.revenue_by_visitor.get(visitor, Decimal(0)) + amount
        if credited and variant_id != own_variant:
            guests[variant_id].add(visitor)
    for variant_id, funnel in out.items():
        funnel.visitors += len(guests[variant_id])
        funnel.impressions = len(shown[variant_id])
        funnel.clicked_impressions = len(clicked[variant_id])
    return list(out.values())
