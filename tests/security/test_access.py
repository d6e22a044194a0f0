"""Who may see what: shoppers only their own recommendations and events; audiences, previews
and model actions only for staff (or keys with the scope). Every refusal is tested, and a
refusal never tells whether the object asked for exists."""

import json

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from recommendations.events.tracking import SESSION_KEY
from recommendations.events.validation import stable_event_id
from recommendations.models import Campaign, Event
from shop.models import Order
from tests.security.clients import browser, with_key

pytestmark = pytest.mark.django_db
FOR_YOU = "/api/recommendations/for-you/"
MISSING = 987654


def test_a_shopper_gets_only_their_own_recommendations(alice, bob):
    own = browser(alice)
    assert own.get(FOR_YOU, {"user": alice.pk}).status_code == 200
    someone_else = own.get(FOR_YOU, {"user": bob.pk})
    nobody = own.get(FOR_YOU, {"user": MISSING})
    assert someone_else.status_code == nobody.status_code == 403
    assert someone_else.json() == nobody.json(), "the refusal must not reveal whether the user exists"
    assert own.get(FOR_YOU, {"session_id": "someone-elses-session"}).status_code == 403
    anonymous = Client().get(FOR_YOU, {"user": bob.pk})
    assert anonymous.status_code == 403


def test_staff_and_read_keys_may_ask_for_anyone_and_learn_what_is_missing(staff, bob, make_key):
    for client in (browser(staff), with_key(make_key("recommendations:read"))):
        assert client.get(FOR_YOU, {"user": bob.pk}).status_code == 200
        assert client.get(FOR_YOU, {"user": MISSING}).status_code == 404


def test_a_shopper_cannot_write_events_as_someone_else(alice, bob, products):
    events = [
        {"event_type": "view", "product_id": products[0].pk, "user_id": bob.pk},
        {"event_type": "view", "product_id": products[0].pk, "session_id": "bobs-session"},
    ]
    response = browser(alice).post(
        "/api/events/", json.dumps({"events": events}), content_type="application/json"
    )
    assert response.status_code == 400
    assert {"user_id", "session_id"} <= {
        name for error in response.json()["errors"] for name in error["errors"]
    }
    assert not Event.objects.exists()


def test_a_visitor_cannot_take_the_event_ids_of_purchases_to_come(products):
    """A purchase's id is `order:<order pk>:<product pk>`, and order numbers are shown to every
    buyer. A browser's ids are kept apart, so claiming them first cannot stop a sale being stored."""
    details = {"name": "A", "email": "a@example.com", "address": "1 St", "city": "X", "postcode": "1"}

    def buy(client, product):
        client.post(reverse("shop:cart_add"), {"product": product.pk, "quantity": 1})
        assert client.post(reverse("shop:checkout"), details).status_code == 302
        return Order.objects.latest("pk")

    attacker, buyer, stranger = browser(), browser(), browser()
    next_order = buy(attacker, products[0]).pk + 1
    claims = [
        {"event_id": f"order:{next_order + n}:{p.pk}", "event_type": "view", "product_id": p.pk}
        for n in range(3)
        for p in products
    ]
    batch = json.dumps({"events": claims})
    first = attacker.post("/api/events/", batch, content_type="application/json")
    assert first.json() == {"received": 9, "stored": 9, "duplicates": 0, "opted_out": 0}
    retried = attacker.post("/api/events/", batch, content_type="text/plain")  # the beacon's retry
    assert retried.json()["duplicates"] == 9, "a session's own ids are still stored once"
    other = stranger.post("/api/events/", batch, content_type="application/json")
    assert other.json()["stored"] == 9, "another session's ids do not collide with these"

    order = buy(buyer, products[1])
    assert order.pk == next_order
    purchase = Event.objects.get(event_id=stable_event_id("order", order.pk, products[1].pk))
    assert purchase.event_type == "purchase"
    assert purchase.session_id == buyer.session[SESSION_KEY]
    assert not Event.objects.filter(event_type="view", event_id__startswith="order:").exists()


def test_audiences_are_for_staff_and_audience_keys_only(alice, staff, make_key):
    campaign = Campaign.objects.create(name="Spring", product_ids=["1"])
    url, missing = f"/api/campaigns/{campaign.pk}/audience/", f"/api/campaigns/{MISSING}/audience/"
    refused = {
        "anonymous": Client(),
        "shopper": browser(alice),
        "key without audiences:read": with_key(make_key("recommendations:read", "events:write")),
    }
    for who, client in refused.items():
        existing, absent = client.get(url), client.get(missing)
        assert existing.status_code in (401, 403), who
        assert (absent.status_code, absent.json()) == (existing.status_code, existing.json()), who
        assert client.get("/api/campaigns/").status_code in (401, 403), who
    for client in (browser(staff), with_key(make_key("audiences:read"))):
        assert client.get(url).status_code == 200
        assert client.get(missing).status_code == 404


def test_campaign_and_experiment_changes_need_staff_even_with_an_audience_key(make_key, staff):
    key = with_key(make_key("audiences:read"))
    body = {"name": "Flash", "product_ids": ["1"]}
    assert key.post("/api/campaigns/", body, content_type="application/json").status_code == 403
    assert (
        key.post("/api/experiments/", {"key": "x", "name": "X"}, content_type="application/json").status_code
        == 403
    )
    assert not Campaign.objects.exists()


def engine_admin_pages():
    """The changelist of every admin page of the engine: previews, model versions, events, ..."""
    return [
        reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label == "recommendations"
    ]


def test_previews_and_model_actions_are_staff_only(alice):
    pages = engine_admin_pages()
    assert "/admin/recommendations/userpreview/" in pages
    shopper = browser(alice)
    for page in pages:
        for client in (Client(), shopper):
            response = client.get(page)
            assert response.status_code == 302 and response["Location"].startswith("/admin/login/"), page
            # An admin action posted by a non-staff user goes to the login page, not the action.
            acted = client.post(page, {"action": "delete_selected", "_selected_action": ["1"]})
            assert acted.status_code == 302 and acted["Location"].startswith("/admin/login/"), page


def test_staff_without_permissions_are_refused_the_engine_admin(django_user_model):
    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    client = browser(clerk)
    for page in engine_admin_pages():
        assert client.get(page).status_code == 403, page


def test_the_erase_action_is_not_offered_without_the_delete_permission(django_user_model, alice):
    from django.contrib.auth.models import Permission

    clerk = django_user_model.objects.create_user("clerk", is_staff=True)
    clerk.user_permissions.add(
        Permission.objects.get(codename="view_user"), Permission.objects.get(codename="change_user")
    )
    User = get_user_model()
    page = reverse(f"admin:{User._meta.app_label}_{User._meta.model_name}_changelist")
    client = browser(clerk)
    response = client.post(
        page, {"action": "erase_personal_data", "_selected_action": [alice.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302) and b"Erased the personal data" not in response.content
