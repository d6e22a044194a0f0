"""Cart and checkout through the storefront's views: what is stored, what is recorded."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from recommendations.events import signals
from recommendations.events.tracking import SESSION_KEY as ENGINE_SESSION_KEY
from recommendations.models import Event, ServedRecommendation
from recommendations.serving.attribution import new_recommendation_id
from shop.cart import MAX_QUANTITY
from shop.catalog_import import MAX_PRICE
from shop.models import Order, Product

DETAILS = {
    "name": "Ada Shopper",
    "email": "ada@example.com",
    "address": "1 Quay St",
    "city": "Bristol",
    "postcode": "BS1",
}


def add(client, product, quantity=1, recommendation_id=""):
    return client.post(
        reverse("shop:cart_add"),
        {"product": product.pk, "quantity": quantity, "recommendation_id": recommendation_id},
    )


@pytest.fixture
def mug(catalogue):
    return catalogue[0]


def served(*products, kind="for_you", session_id="", user=None):
    """The id of a list of `products` served to that session or user (to nobody: a first page)."""
    return ServedRecommendation.objects.create(
        id=new_recommendation_id(),
        kind=kind,
        source="trending",
        session_id=session_id,
        user=user,
        product_ids=[str(p.pk) for p in products],
        scores=[1.0] * len(products),
    ).pk


def test_add_to_cart_records_an_attributed_event_and_shows_in_the_cart(client, mug):
    shelf = served(mug)  # the visitor's first page, served before they had a session
    response = add(client, mug, 2, recommendation_id=shelf)
    assert response.status_code == 302
    event = Event.objects.get(event_type="add_to_cart")
    assert (event.product_id, event.value, event.recommendation_id) == (str(mug.pk), 2.0, shelf)
    assert event.session_id == client.session[ENGINE_SESSION_KEY]
    page = client.get(reverse("shop:cart"))
    assert page.context["total"] == mug.price * 2
    assert 'data-testid="cart-count">2<' in page.content.decode()


def test_a_posted_recommendation_is_credited_only_for_a_list_this_visitor_saw_with_the_product(
    client, catalogue
):
    """The form's hidden field is the browser's word: a script could post any list's id."""
    mug, knife = catalogue[0], catalogue[2]
    add(client, knife, recommendation_id=served(knife))  # the first page: now this session's
    own = client.session[ENGINE_SESSION_KEY]
    forged = {
        "another visitor's list": served(mug, session_id="someone-else"),
        "a list without the mug": served(knife, session_id=own),
        "a list of stores": served(mug, kind="stores", session_id=own),
        "an id never served": "0a8c3a1f3c33d12f456b",
    }
    for recommendation_id in forged.values():
        assert add(client, mug, recommendation_id=recommendation_id).status_code == 302
    carts = Event.objects.filter(event_type="add_to_cart", product_id=str(mug.pk))
    assert carts.count() == len(forged), "each add still counts"
    assert set(carts.values_list("recommendation_id", flat=True)) == {""}, "credited to no list"
    client.post(reverse("shop:checkout"), DETAILS)
    assert Event.objects.get(event_type="purchase", product_id=str(mug.pk)).recommendation_id == ""


def test_a_first_page_list_is_the_first_sessions_to_add_from_it(client, mug, shopper):
    shelf = served(mug)
    add(client, mug, recommendation_id=shelf)
    elsewhere = Client()  # another browser replaying the id
    add(elsewhere, mug, recommendation_id=shelf)
    phone = Client()  # a signed-in shopper's list counts from any of their sessions
    phone.force_login(shopper)
    theirs = served(mug, user=shopper)
    add(phone, mug, recommendation_id=theirs)
    credited = Event.objects.filter(event_type="add_to_cart").values_list("session_id", "recommendation_id")
    assert sorted(credited) == sorted(
        [
            (client.session[ENGINE_SESSION_KEY], shelf),
            (elsewhere.session[ENGINE_SESSION_KEY], ""),
            (phone.session[ENGINE_SESSION_KEY], theirs),
        ]
    )


@pytest.mark.parametrize(
    ("quantity", "message"),
    [(6, "Only 5 of"), (0, "at least 1"), (100, "between 1 and 99"), ("two", "between 1 and 99")],
)
def test_bad_quantities_are_refused_with_a_message_and_nothing_recorded(client, mug, quantity, message):
    response = add(client, mug, quantity)
    assert response.status_code == 302
    follow = client.get(response.url)
    assert message in follow.content.decode()
    assert not Event.objects.exists()
    assert client.get(reverse("shop:cart")).context["lines"] == []


def test_out_of_stock_and_unknown_products_cannot_be_added(client, catalogue):
    add(client, catalogue[7])
    assert client.get(reverse("shop:cart")).context["lines"] == []
    assert client.post(reverse("shop:cart_add"), {"product": 99999, "quantity": 1}).status_code == 404


def test_changing_quantities_records_cart_events(client, mug):
    add(client, mug, 3)
    client.post(reverse("shop:cart_update"), {"product": mug.pk, "quantity": 1})
    client.post(reverse("shop:cart_update"), {"product": mug.pk, "quantity": 0})
    types = list(Event.objects.order_by("id").values_list("event_type", "value"))
    assert types == [("add_to_cart", 3.0), ("remove_from_cart", 2.0), ("remove_from_cart", 1.0)]
    assert client.get(reverse("shop:cart")).context["lines"] == []


def test_checkout_places_the_order_records_purchases_and_empties_the_cart(client, catalogue, shopper):
    client.force_login(shopper)
    mug, knife = catalogue[0], catalogue[1]
    shelf = served(mug, knife, user=shopper)
    add(client, mug, 2, recommendation_id=shelf)
    add(client, knife, 1)
    response = client.post(reverse("shop:checkout"), DETAILS)
    order = Order.objects.get()
    assert response.status_code == 302 and response.url == reverse("shop:order", args=[order.pk])
    assert order.user == shopper and order.total == mug.price * 2 + knife.price
    assert [(line.title, line.quantity) for line in order.lines.all()] == [(mug.title, 2), (knife.title, 1)]
    assert Product.objects.get(pk=mug.pk).stock == 3
    purchases = {e.product_id: e for e in Event.objects.filter(event_type="purchase")}
    assert purchases[str(mug.pk)].revenue == mug.price * 2
    assert purchases[str(mug.pk)].recommendation_id == shelf
    assert purchases[str(knife.pk)].user == shopper and purchases[str(knife.pk)].value == 1
    assert client.get(reverse("shop:cart")).context["lines"] == []
    confirmation = client.get(response.url)
    assert confirmation.status_code == 200 and f"Order #{order.pk}" in confirmation.content.decode()


def test_the_shop_records_carts_and_orders_through_the_engines_signals(client, mug):
    """The demo is a host like any other: what it records goes through `added_to_cart`,
    `removed_from_cart` and `order_placed`, with the checked recommendation on each line, so a
    host's own receivers hear its carts and orders too."""
    heard = []

    def listen(signal, sender, **kwargs):
        heard.append((signal, kwargs))

    shelf = served(mug)
    watched = (signals.added_to_cart, signals.removed_from_cart, signals.order_placed)
    for signal in watched:
        signal.connect(listen)
    try:
        add(client, mug, 3, recommendation_id=shelf)
        client.post(reverse("shop:cart_update"), {"product": mug.pk, "quantity": 1})
        client.post(reverse("shop:cart_update"), {"product": mug.pk, "quantity": 2})
        client.post(reverse("shop:checkout"), DETAILS)
    finally:
        for signal in watched:
            signal.disconnect(listen)
    (_, cart), (removed, removal), (added, more), (_, order) = heard
    assert (cart["product"], cart["quantity"], cart["recommendation_id"]) == (mug, 3, shelf)
    assert (removed, removal["product"], removal["quantity"]) == (signals.removed_from_cart, mug, 2)
    assert (added, more["product"], more["quantity"]) == (signals.added_to_cart, mug, 1)
    assert order["order_id"] == Order.objects.get().pk
    assert order["lines"] == [signals.OrderLine(mug, 2, mug.price, shelf)]  # 3, less 2, plus 1
    assert Event.objects.get(event_type="purchase").recommendation_id == shelf


def test_checkout_that_runs_out_of_stock_writes_nothing(client, mug):
    add(client, mug, 4)
    Product.objects.filter(pk=mug.pk).update(stock=3)  # someone else bought some meanwhile
    response = client.post(reverse("shop:checkout"), DETAILS)
    assert response.status_code == 302 and response.url == reverse("shop:cart")
    assert not Order.objects.exists()
    assert not Event.objects.filter(event_type="purchase").exists()
    assert Product.objects.get(pk=mug.pk).stock == 3
    cart = client.get(reverse("shop:cart"))
    assert [line.quantity for line in cart.context["lines"]] == [4]
    assert "only 3 of" in cart.content.decode()


def test_checkout_form_errors_are_shown_and_nothing_is_written(client, mug):
    add(client, mug)
    response = client.post(reverse("shop:checkout"), {**DETAILS, "email": "not-an-email"})
    assert response.status_code == 200
    assert "Enter a valid email address" in response.content.decode()
    assert not Order.objects.exists() and not Event.objects.filter(event_type="purchase").exists()


def test_checkout_with_an_empty_cart_goes_back_to_the_cart(client, catalogue):
    response = client.get(reverse("shop:checkout"))
    assert response.status_code == 302 and response.url == reverse("shop:cart")


def test_an_order_is_only_shown_to_whoever_placed_it(client, mug, django_user_model):
    add(client, mug)
    client.post(reverse("shop:checkout"), DETAILS)
    order = Order.objects.get()
    assert client.get(reverse("shop:order", args=[order.pk])).status_code == 200
    elsewhere = Client()  # another browser
    assert elsewhere.get(reverse("shop:order", args=[order.pk])).status_code == 404
    elsewhere.force_login(django_user_model.objects.create_user("stranger"))
    assert elsewhere.get(reverse("shop:order", args=[order.pk])).status_code == 404


def test_new_visitor_forgets_the_user_the_cart_and_the_engine_session(client, mug, shopper):
    client.force_login(shopper)
    add(client, mug)
    engine_session = client.session[ENGINE_SESSION_KEY]
    response = client.post(reverse("shop:new_visitor"))
    assert response.status_code == 302
    assert "_auth_user_id" not in client.session
    assert client.get(reverse("shop:cart")).context["lines"] == []
    add(client, mug)
    assert client.session[ENGINE_SESSION_KEY] != engine_session
    assert Event.objects.order_by("-id").first().user is None


def test_new_visitor_needs_a_post(client, db):
    assert client.get(reverse("shop:new_visitor")).status_code == 405


def test_placeholder_pictures_are_cacheable_svg(client, mug):
    response = client.get(reverse("shop:product_image", args=[mug.pk]))
    assert response.status_code == 200 and response["Content-Type"] == "image/svg+xml"
    assert "max-age=86400" in response["Cache-Control"]
    assert (
        response.content.startswith(b"<svg")
        and response.content == client.get(response.request["PATH_INFO"]).content
    )
    logo = client.get(reverse("shop:store_logo", args=[mug.store_id]))
    assert b">C&amp;C</text>" in logo.content or b">CC</text>" in logo.content
    assert client.get(reverse("shop:product_image", args=[99999])).status_code == 404


def test_revenue_is_exact(client, mug):
    mug.price = Decimal("19.99")
    mug.save()
    add(client, mug, 3)
    client.post(reverse("shop:checkout"), DETAILS)
    assert Event.objects.get(event_type="purchase").revenue == Decimal("59.97")


def test_the_shops_script_gets_the_answer_as_json_and_no_message_for_the_next_page(client, mug):
    """cart.js adds without leaving the page: the badge's count and the message come back."""
    json = {"HTTP_ACCEPT": "application/json"}
    answer = client.post(reverse("shop:cart_add"), {"product": mug.pk, "quantity": 2}, **json)
    assert answer.status_code == 200
    assert answer.json() == {"message": f"Added 2 x {mug.title} to your cart.", "count": 2}
    refused = client.post(reverse("shop:cart_add"), {"product": mug.pk, "quantity": 4}, **json)
    assert refused.status_code == 400 and refused.json() == {
        "message": f"Only 5 of {mug.title} in stock.",
        "count": 2,
    }
    assert "to your cart" not in client.get(reverse("shop:cart")).content.decode()
    assert Event.objects.filter(event_type="add_to_cart").count() == 1


def test_a_cart_of_the_most_at_the_highest_price_is_ordered(client, catalogue):
    """Two products at the highest price, 99 of each, overflowed the order's total: a 500."""
    top = catalogue[:2]
    Product.objects.filter(pk__in=[p.pk for p in top]).update(price=MAX_PRICE, stock=MAX_QUANTITY)
    for product in top:
        add(client, product, MAX_QUANTITY)
    response = client.post(reverse("shop:checkout"), DETAILS)
    order = Order.objects.get()
    assert response.status_code == 302 and response.url == reverse("shop:order", args=[order.pk])
    assert order.total == MAX_PRICE * MAX_QUANTITY * 2 == Decimal("19799999998.02")
    assert "19799999998.02" in client.get(response.url).content.decode()


def test_a_checkout_takes_the_stock_of_every_line_in_one_statement(client, catalogue):
    """One UPDATE per cart line: 14 statements for one line, 33 for twenty."""
    in_stock = [p for p in catalogue if p.stock]
    quantity = {p.pk: 1 + i % 2 for i, p in enumerate(in_stock)}  # lines that differ
    statements = []
    for products in (in_stock[:1], in_stock):
        for product in products:
            add(client, product, quantity[product.pk])
        with CaptureQueriesContext(connection) as executed:
            response = client.post(reverse("shop:checkout"), DETAILS)
        assert response.url == reverse("shop:order", args=[Order.objects.latest("pk").pk])
        statements.append([q["sql"] for q in executed.captured_queries])
    one_line, many = statements
    assert len(many) == len(one_line)
    assert len([sql for sql in many if sql.startswith('UPDATE "shop_product"')]) == 1
    quantity[in_stock[0].pk] *= 2  # in both orders
    stock = dict(Product.objects.values_list("pk", "stock"))
    assert {p.pk: stock[p.pk] for p in in_stock} == {p.pk: p.stock - quantity[p.pk] for p in in_stock}
