"""Anonymous ids are random and client IP addresses are never stored, whichever way events come in."""

import json

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.middleware.csrf import _get_new_csrf_string
from django.test import Client, RequestFactory

from recommendations.events.tracking import get_session_id, track
from recommendations.models import ApiKey, Event
from shop.models import Category, Product, Store
from tests.security.clients import browser

pytestmark = pytest.mark.django_db
IPS = ("203.0.113.7", "198.51.100.23", "192.0.2.44", "2001:db8::1")
CLIENT_HEADERS = {
    "REMOTE_ADDR": IPS[0],
    "HTTP_X_FORWARDED_FOR": f"{IPS[1]}, 10.0.0.1",
    "HTTP_X_REAL_IP": IPS[2],
    "HTTP_FORWARDED": f'for="[{IPS[3]}]";proto=https',
    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0",
}


@pytest.fixture
def product():
    store = Store.objects.create(name="Clay", slug="clay")
    category = Category.objects.create(name="Mugs")
    return Product.objects.create(title="Mug", slug="mug", category=category, store=store, price=5, stock=3)


def everything_the_engine_stored() -> str:
    """Every column of every row of every table of the app, as one text."""
    rows = []
    for model in apps.get_app_config("recommendations").get_models():
        if not model._meta.proxy:
            rows.extend(model._default_manager.values())
    return json.dumps(rows, default=str)


def test_no_way_in_stores_the_client_address(product):
    shopper = get_user_model().objects.create_user("shopper")
    request = RequestFactory().get("/product/mug/", **CLIENT_HEADERS)
    request.user, request.session = shopper, {}
    track(request, "view", product=product)

    batch = {
        "events": [{"event_type": "view", "product_id": product.pk, "context": {"page": "/product/mug/"}}]
    }
    for client in (browser(**CLIENT_HEADERS), browser(shopper, **CLIENT_HEADERS)):
        response = client.post("/api/events/", json.dumps(batch), content_type="application/json")
        assert response.status_code in (200, 201), response.content
    # The beacon: navigator.sendBeacon posts text/plain with the CSRF token in the body.
    beacon = {**batch, "csrf_token": _get_new_csrf_string()}
    anonymous = Client(enforce_csrf_checks=True, **CLIENT_HEADERS)
    anonymous.cookies["csrftoken"] = beacon["csrf_token"]
    assert anonymous.post("/api/events/", json.dumps(beacon), content_type="text/plain").status_code in (
        200,
        201,
    )
    _, raw_key = ApiKey.objects.create_key("server", ["events:write"])
    server = Client(HTTP_AUTHORIZATION=f"Api-Key {raw_key}", **CLIENT_HEADERS)
    assert server.post("/api/events/", json.dumps(batch), content_type="application/json").status_code in (
        200,
        201,
    )

    assert Event.objects.count() == 5
    stored = everything_the_engine_stored()
    assert "Firefox" in stored, "the check reads the stored context"
    for ip in IPS:
        assert ip not in stored


def test_anonymous_ids_are_random_not_derived_from_the_client():
    ids = set()
    for _ in range(20):
        request = RequestFactory().get("/", **CLIENT_HEADERS)
        request.session = {}
        ids.add(get_session_id(request))
    assert len(ids) == 20, "the same address and browser must not get the same id"
    assert all(len(session_id) >= 32 for session_id in ids)  # 128 bits of randomness as hex
