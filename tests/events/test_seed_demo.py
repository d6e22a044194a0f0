"""The demo data generator: a believable, deterministic shop written through the COPY path."""

import datetime as dt
import re
from collections import Counter
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from recommendations.events.preprocessing import clean_events
from recommendations.models import Event
from recommendations.privacy.optout import set_opted_out
from shop.demo_catalogue import DEPARTMENTS
from shop.models import Product, Store

END = dt.date(2025, 12, 31)


def seed(number=3):
    call_command("seed_demo", seed=number, products=80, users=40, days=60, end=END, stdout=StringIO())


def snapshot():
    """Events and products without their primary keys, which differ between runs."""
    titles = dict(Product.objects.values_list("pk", "title"))
    events = sorted(
        (e, t, titles.get(int(p)) if p else "", ts, v)
        for e, t, p, ts, v in Event.objects.values_list(
            "event_id", "event_type", "product_id", "timestamp", "value"
        )
    )
    return events, sorted(Product.objects.values_list("sku", "title", "price", "stock"))


@pytest.mark.django_db
def test_seed_demo_builds_a_shop_with_funnels_seasons_and_bots():
    seed()
    assert Store.objects.count() == 13
    assert all(store.categories.exists() for store in Store.objects.all())
    products = list(Product.objects.select_related("category", "store"))
    assert len(products) == 80
    assert all(p.category.parent is not None and p.description and p.price > 0 for p in products)
    assert get_user_model().objects.filter(email__endswith="@demo.example.com").count() == 40

    counts = Counter(Event.objects.values_list("event_type", flat=True))
    # A funnel: many views, fewer carts, fewer purchases; plus searches, ratings and store visits.
    assert counts["view"] > counts["add_to_cart"] > counts["purchase"] > 0
    assert counts["search"] > 0 and counts["rating"] > 0 and counts["store_view"] > 0
    assert Event.objects.filter(user__isnull=True).exclude(context__user_agent__contains="bot").exists()
    assert all(e.timestamp < dt.datetime(2026, 1, 1, tzinfo=dt.UTC) for e in Event.objects.only("timestamp"))
    purchase = Event.objects.filter(event_type="purchase").first()
    assert purchase.revenue == Product.objects.get(pk=purchase.product_id).price * int(purchase.value)

    clean = clean_events()
    assert clean.dropped["bot_user_agent"] > 0  # the crawler sessions

    # Consumables are bought again; a durable good (a speaker) once per shopper, so that
    # "buy it again" has nothing durable to offer.
    consumable = {sub.name for subs in DEPARTMENTS.values() for sub in subs if sub.consumable}
    category = {str(p.pk): p.category.name for p in products}
    repeats = Counter(
        category[pid]
        for (user, pid), n in Counter(
            Event.objects.filter(event_type="purchase", user__isnull=False).values_list(
                "user_id", "product_id"
            )
        ).items()
        if n > 1
    )
    assert repeats and set(repeats) <= consumable, repeats


@pytest.mark.django_db
def test_seed_demo_is_deterministic_and_replaces_its_own_data():
    seed()
    first = snapshot()
    seed()
    second = snapshot()
    assert first == second
    assert Product.objects.count() == 80
    seed(4)
    assert snapshot()[1] != first[1]


@pytest.mark.django_db
def test_seed_demo_stores_nothing_of_a_shopper_who_opted_out():
    """Demo accounts are reused when the shop is seeded again: one who opted out of
    personalisation gets no generated behaviour, as `ingest()` would store none of theirs."""
    seed()
    shopper = get_user_model().objects.filter(recommendation_events__isnull=False).first()
    set_opted_out(shopper)
    seed()
    assert not Event.objects.filter(user=shopper).exists()
    assert Event.objects.filter(user__isnull=False).exists()


@pytest.mark.django_db
def test_seed_demo_says_once_what_it_made():
    output = StringIO()
    call_command("seed_demo", seed=3, products=80, users=40, days=60, end=END, stdout=output)
    summaries = [line for line in output.getvalue().splitlines() if "seeded" in line.lower()]
    assert len(summaries) == 1, output.getvalue()
    made = r"Seeded 80 products, 40 shoppers \(password 'demo'\) and \d+ events over 60 days in [\d.]+s\."
    assert re.fullmatch(made, summaries[0])
