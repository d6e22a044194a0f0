"""A host whose category is a plain text field and which has no stores (tests/hostapp Listing):
`manage.py check` passes, so search indexing, training and embedding must read it too (they
joined the category with select_related, a FieldError on a non-relation)."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.test import override_settings
from django.utils import timezone

from recommendations import adapters, pipeline
from recommendations.models import Event, ProductDocument, ProductVector
from recommendations.serving import products, search
from recommendations.serving.types import Audience, Options
from tests.hostapp.models import Listing
from tests.pipeline.tiny import TINY_TRAINING

LISTINGS = {
    "PRODUCT_MODEL": "hostapp.Listing",
    "PRODUCT_ADAPTER": "tests.hostapp.adapters.ListingAdapter",
    "TRAINING": TINY_TRAINING,
    "DEVICE": "cpu",
}


@pytest.fixture
def listings(db, django_user_model):
    """Two shelves of teas and of mugs; each shopper keeps to one shelf."""
    made = [
        Listing.objects.create(name=f"{kind} {i}", category=category)
        for kind, category in (("Green tea", "Tea"), ("Stoneware mug", "Mugs"))
        for i in range(6)
    ]
    start = timezone.now() - dt.timedelta(days=3)
    events = []
    for u in range(8):
        user = django_user_model.objects.create_user(f"drinker{u}")
        shelf = made[:6] if u % 2 else made[6:]
        events += [
            Event(
                event_type="view",
                user=user,
                session_id=f"s{u}",
                product_id=str(listing.pk),
                timestamp=start + dt.timedelta(minutes=10 * u + e),
            )
            for e, listing in enumerate(shelf)
        ]
    Event.objects.bulk_create(events)
    with override_settings(RECOMMENDATIONS=LISTINGS):
        yield made


def test_a_plain_text_category_is_indexed_trained_on_and_embedded(listings):
    adapters.validate_configuration()

    call_command("refresh_serving", stdout=StringIO())
    document = ProductDocument.objects.get(product_id=str(listings[0].pk))
    assert (document.title, document.categories) == ("Green tea 0", ["Tea"])
    found = search.search("stoneware", Audience(), Options())
    assert {obj.category for obj, _ in found} == {"Mugs"}

    version = pipeline.retrain().version
    assert ProductVector.objects.filter(model_version=version).count() == len(listings)
    similar = products.similar(str(listings[0].pk), Audience(), Options())
    assert similar.ids and str(listings[0].pk) not in similar.ids
