"""track() and the host signals for a signed-in shopper whose primary key is a UUID."""

from decimal import Decimal

import pytest
from django.contrib.sessions.backends.db import SessionStore

import recommendations
from recommendations.events import signals
from recommendations.events.validation import EventValidationError
from recommendations.models import Event


@pytest.fixture
def signed_in(rf, shopper):
    request = rf.get("/tea/", HTTP_USER_AGENT="Mozilla/5.0")
    request.session = SessionStore()
    request.user = shopper
    return request


def test_track_and_every_host_signal_record_a_uuid_keyed_shopper(signed_in, shopper, listings):
    tea, mug = listings[0], listings[2]
    recommendations.track(signed_in, "view", product=tea)
    recommendations.track(None, "purchase", product=mug, value=1, revenue=Decimal("12"), user=shopper)
    signals.product_viewed.send(sender=None, request=signed_in, product=mug)
    signals.added_to_cart.send(sender=None, user=shopper, product=tea, quantity=2)
    signals.searched.send(sender=None, user=shopper, query="tea", results=listings[:2])
    signals.order_placed.send(sender=None, user=shopper, order_id=5, lines=[(tea, 2, Decimal("3"))])
    signals.review_added.send(sender=None, user=shopper, product=tea, rating=5)
    recorded = Event.objects.values_list("event_type", "user_id", "product_id")
    assert sorted(recorded, key=str) == sorted(
        [
            ("add_to_cart", shopper.pk, str(tea.pk)),
            ("purchase", shopper.pk, str(tea.pk)),
            ("purchase", shopper.pk, str(mug.pk)),
            ("rating", shopper.pk, str(tea.pk)),
            ("search", shopper.pk, ""),
            ("view", shopper.pk, str(tea.pk)),
            ("view", shopper.pk, str(mug.pk)),
        ],
        key=str,
    )


def test_a_uuid_that_is_no_user_is_named(listings, django_user_model):
    ghost = django_user_model(email="ghost@example.com")  # never saved: its key is no user's
    with pytest.raises(EventValidationError, match=f"no user has the primary key '{ghost.pk}'"):
        recommendations.track(None, "view", product=listings[0], user=ghost)
    assert not Event.objects.exists()
