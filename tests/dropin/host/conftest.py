"""A few listings, shoppers of the host's own user model, and their views."""

import datetime as dt

import pytest
from django.utils import timezone

from recommendations.models import Event
from tests.hostapp.models import Listing


@pytest.fixture
def listings(db):
    return [
        Listing.objects.create(name=name, category=category)
        for name, category in [("Green tea", "Tea"), ("Black tea", "Tea"), ("Stoneware mug", "Mugs")]
    ]


@pytest.fixture
def shopper(django_user_model):
    return django_user_model.objects.create_user("tea.lover@example.com", "secret")


@pytest.fixture
def history(listings, shopper, django_user_model):
    """The shopper and another drinker viewed every listing yesterday."""
    other = django_user_model.objects.create_user("other@example.com")
    yesterday = timezone.now() - dt.timedelta(days=1)
    Event.objects.bulk_create(
        Event(event_type="view", user=user, product_id=str(listing.pk), timestamp=yesterday)
        for user in (shopper, other)
        for listing in listings
    )
    return listings
