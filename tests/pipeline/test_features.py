"""Training data from the database: key maps, weights, the data window, too little data."""

import datetime as dt

import pytest
from django.utils import timezone

from recommendations.features import InsufficientData, build_training_data
from recommendations.models import Event
from shop.models import Product


def test_training_data_maps_host_keys_to_indices(shop):
    data = build_training_data()
    items = data.catalogue.items
    assert len(items) == len(shop.products)
    assert data.interactions.n_users == len(shop.users)
    user = shop.users[0]
    u = data.actors.index(f"u:{user.pk}")
    assert data.user_ids[u] == user.pk
    # The user's sequence, mapped back to keys, is their events oldest first.
    expected = list(
        Event.objects.filter(user=user).order_by("timestamp").values_list("product_id", flat=True)
    )
    assert [items.keys[i] for i in data.interactions.sequence(u)] == expected
    # Purchases weigh more than views of the same age.
    weights = data.interactions.user_weights(u)
    kinds = list(Event.objects.filter(user=user).order_by("timestamp").values_list("event_type", flat=True))
    assert min(w for w, k in zip(weights, kinds) if k == "purchase") > max(
        w for w, k in zip(weights, kinds) if k == "view"
    )
    assert data.interactions.item_features.n_items == len(items)


def test_window_keeps_recent_events_only(shop):
    Event.objects.filter(user=shop.users[0]).update(timestamp=timezone.now() - dt.timedelta(days=400))
    data = build_training_data(window_days=365)
    assert f"u:{shop.users[0].pk}" not in data.actors
    assert data.window_start > timezone.now() - dt.timedelta(days=366)


def test_inactive_products_stay_in_histories_but_are_flagged(shop):
    product = shop.products[0]
    Product.objects.filter(pk=product.pk).update(is_active=False)
    data = build_training_data()
    assert not data.catalogue.active[data.catalogue.items.index(str(product.pk))]


@pytest.mark.django_db
@pytest.mark.parametrize(
    "setup, message",
    [
        ("empty", "catalogue is empty"),
        ("no_events", "no product events"),
        ("one_user", "Only 1 shopper"),
        ("all_inactive", "All 200 products are inactive"),
        ("single_events", "No shopper has more than one"),
    ],
)
def test_too_little_data_is_explained(shop, setup, message):
    if setup == "empty":
        Event.objects.all().delete()
        Product.objects.all().delete()
    elif setup == "no_events":
        Event.objects.all().delete()
    elif setup == "one_user":
        Event.objects.exclude(user=shop.users[0]).delete()
    elif setup == "single_events":
        for user in shop.users:
            Event.objects.filter(user=user).exclude(pk=Event.objects.filter(user=user).first().pk).delete()
    else:
        Product.objects.update(is_active=False)
    with pytest.raises(InsufficientData, match=message):
        build_training_data()
