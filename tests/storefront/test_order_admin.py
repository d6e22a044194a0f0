"""Orders in the admin: placed by the checkout, read (and their shipping details corrected)
here; the lines bought and the total stay as the shopper paid them."""

from decimal import Decimal

import pytest

from shop.models import Order, OrderLine

pytestmark = pytest.mark.django_db


@pytest.fixture
def order(catalogue, shopper) -> Order:
    order = Order.objects.create(
        user=shopper,
        name="Sam",
        email="sam@example.com",
        address="1 High St",
        city="Leeds",
        postcode="LS1",
        total=Decimal("24.00"),
    )
    mug = catalogue[0]
    OrderLine.objects.create(order=order, product=mug, title=mug.title, unit_price=mug.price, quantity=2)
    return order


def test_an_order_line_cannot_be_rewritten_after_purchase(admin_client, order):
    line = order.lines.get()
    rewritten = {"order": order.pk, "product": line.product_id, "title": line.title}
    rewritten |= {"unit_price": "1.00", "quantity": "9"}
    response = admin_client.post(f"/admin/shop/orderline/{line.pk}/change/", rewritten)
    assert response.status_code == 403
    line.refresh_from_db()
    assert (line.unit_price, line.quantity) == (Decimal("12.00"), 2)

    page = admin_client.get(f"/admin/shop/order/{order.pk}/change/")
    assert page.status_code == 200 and b"Stoneware mug 0" in page.content
    lines = page.context["inline_admin_formsets"][0]
    assert not lines.has_add_permission and not lines.has_change_permission


def test_orders_are_not_added_in_the_admin(admin_client, catalogue):
    """The total is the checkout's sum of the lines: an order added here had none (a 500)."""
    details = {"name": "Sam", "email": "sam@example.com", "address": "1 High St", "city": "Leeds"}
    assert admin_client.get("/admin/shop/order/add/").status_code == 403
    assert admin_client.post("/admin/shop/order/add/", {**details, "postcode": "LS1"}).status_code == 403
    assert not Order.objects.exists()
    assert not admin_client.get("/admin/shop/order/").context["has_add_permission"]


def test_deleting_an_order_deletes_its_lines(admin_client, order):
    page = f"/admin/shop/order/{order.pk}/delete/"
    assert admin_client.post(page, {"post": "yes"}).status_code == 302
    assert not Order.objects.exists() and not OrderLine.objects.exists()
