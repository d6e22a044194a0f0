"""Training rows: what is dropped, how visits are cut, and how events are weighed."""

import datetime as dt

import numpy as np
import pytest
from django.test import override_settings

from recommendations.events.preprocessing import clean_events, event_weight
from recommendations.models import Event

T0 = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
HUMAN = {"user_agent": "Mozilla/5.0 (Windows NT 10.0) Firefox/126.0"}


def event(
    n,
    event_type="view",
    product="",
    minutes=0.0,
    user=None,
    session="",
    value=None,
    context=HUMAN,
    revenue=None,
):
    return Event(
        event_id=f"e{n}",
        event_type=event_type,
        product_id=product,
        user=user,
        session_id=session,
        value=value,
        revenue=revenue,
        timestamp=T0 + dt.timedelta(minutes=minutes),
        context=context,
    )


@pytest.mark.django_db
def test_unknown_inactive_bot_and_duplicate_events_are_dropped(catalogue, shopper):
    live, inactive = str(catalogue[0].pk), str(catalogue[3].pk)
    rows = [
        event(1, product=live, user=shopper, session="a"),
        event(2, product=live, user=shopper, session="a"),  # exact duplicate of 1 under another id
        event(3, product=inactive, user=shopper, session="a"),
        event(4, product="424242", user=shopper, session="a"),
        event(
            5,
            product=live,
            session="crawler",
            context={"user_agent": "Googlebot/2.1 (+http://www.google.com/bot.html)"},
        ),
        event(6, "search", session="a", user=shopper),  # no product: kept
    ]
    # 130 events inside one minute: faster than any person (the ceiling is 120 a minute)...
    rows += [event(100 + i, product=live, session="fast", minutes=i / 200) for i in range(130)]
    # ... while 130 events spread over 130 minutes are a long, human visit.
    rows += [event(300 + i, product=live, session="steady", minutes=i) for i in range(130)]
    Event.objects.bulk_create(rows)

    clean = clean_events()

    assert clean.dropped == {
        "unknown_or_inactive_product": 2,
        "bot_user_agent": 1,
        "bot_rate": 130,
        "duplicate": 1,
    }
    kept = set(Event.objects.filter(pk__in=clean.event_pks).values_list("event_id", flat=True))
    assert kept == {"e1", "e6", *(f"e{300 + i}" for i in range(130))}
    assert clean.item_keys == [live]
    assert (clean.items[clean.event_types == "search"] == -1).all()
    assert set(clean.actor_keys) == {f"u:{shopper.pk}", "s:steady"}
    assert clean.actor_user_ids[clean.actor_keys.index(f"u:{shopper.pk}")] == shopper.pk
    assert np.all(np.diff(clean.timestamps) >= 0)


@pytest.mark.django_db
@override_settings(RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "SESSION_GAP_MINUTES": 30})
def test_visits_are_cut_after_the_session_gap(catalogue, shopper):
    live = str(catalogue[0].pk)
    minutes = [0, 10, 39, 70, 71]  # gaps 10, 29, 31, 1 -> visits {0, 10, 39} and {70, 71}
    Event.objects.bulk_create(
        [event(i, product=live, user=shopper, minutes=m) for i, m in enumerate(minutes)]
    )
    clean = clean_events()
    assert clean.sessions.tolist() == [0, 0, 0, 1, 1]


@pytest.mark.django_db
def test_weights_are_event_weight_times_time_decay(catalogue, shopper):
    live = str(catalogue[0].pk)
    Event.objects.bulk_create(
        [
            event(1, "purchase", live, minutes=0, user=shopper, value=1, revenue="12.50"),
            event(2, "rating", live, minutes=0, user=shopper, value=5),
            event(3, "rating", live, minutes=1, user=shopper, value=1),
            event(4, "view", live, minutes=60 * 24 * 60, user=shopper),  # 60 days later: the newest
        ]
    )
    clean = clean_events()
    by_type = dict(zip(clean.event_types.tolist(), clean.weights.tolist()))
    # The newest event is the reference; the others are one half-life (60 days) older.
    assert by_type["view"] == pytest.approx(1.0)
    assert by_type["purchase"] == pytest.approx(5.0 * 0.5, rel=1e-3)
    assert clean.revenue[clean.event_types == "purchase"].tolist() == [12.5]
    assert clean.revenue[clean.event_types != "purchase"].tolist() == [0.0, 0.0, 0.0]
    assert clean.weights[clean.values == 5][0] == pytest.approx(5.0 * 0.5, rel=1e-3)
    assert clean.weights[clean.values == 1][1] == pytest.approx(-1.0 * 0.5, rel=1e-3)
    later = clean_events(reference_time=T0 + dt.timedelta(days=120))
    assert dict(zip(later.event_types.tolist(), later.weights.tolist()))["view"] == pytest.approx(0.5)


def test_event_weight_reads_the_settings():
    assert event_weight("add_to_cart") == 3.0
    assert event_weight("rating", 4) == 3.0
    assert event_weight("rating", None) == 0.0
    assert event_weight("impression") == 0.0
    with override_settings(
        RECOMMENDATIONS={"PRODUCT_MODEL": "shop.Product", "EVENT_WEIGHTS": {"purchase": 10}}
    ):
        assert event_weight("purchase") == 10.0
        # The types left out keep their weights: they still count in training.
        assert [event_weight(kind) for kind in ("view", "click", "add_to_cart")] == [1.0, 1.0, 3.0]
