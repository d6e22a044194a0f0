"""One order per checkout form: a double click, a retry or two requests at once place one order."""

import threading
import time

import pytest
from django.db import connection, connections, transaction
from django.test import Client
from django.urls import reverse

from shop.models import Order, Product
from tests.storefront.test_cart_checkout import DETAILS, add


def checkout_form(client) -> dict:
    """The checkout page's form as the browser would send it."""
    form = client.get(reverse("shop:checkout")).context["form"]
    return {**DETAILS, "checkout_token": str(form["checkout_token"].value())}


def test_a_form_sent_again_shows_the_order_it_placed(client, catalogue):
    mug = catalogue[0]
    add(client, mug, 2)
    form = checkout_form(client)
    first = client.post(reverse("shop:checkout"), form)
    again = client.post(reverse("shop:checkout"), form)  # the cart is empty by now
    order = Order.objects.get()
    assert first.url == again.url == reverse("shop:order", args=[order.pk])
    assert Product.objects.get(pk=mug.pk).stock == 3
    assert client.get(again.url).status_code == 200


def test_another_browser_sending_the_same_form_gets_neither_that_order_nor_a_second(client, catalogue):
    add(client, catalogue[0])
    form = checkout_form(client)
    client.post(reverse("shop:checkout"), form)
    elsewhere = Client()
    add(elsewhere, catalogue[2])
    response = elsewhere.post(reverse("shop:checkout"), form)
    assert response.url == reverse("shop:cart")
    assert "already used" in elsewhere.get(response.url).content.decode()
    assert Order.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_requests_at_once_with_one_form_place_one_order(catalogue):
    """Both requests read the cart from the session before either has placed the order: the
    test holds the product's row lock until both wait for it, then lets them race."""
    mug = catalogue[0]
    browser = Client()
    add(browser, mug, 2)
    form = checkout_form(browser)
    responses = []

    def submit():
        twin = Client()
        twin.cookies = browser.cookies  # the same browser: the same session cookie
        try:
            responses.append(twin.post(reverse("shop:checkout"), form))
        finally:
            connections.close_all()

    with transaction.atomic():
        Product.objects.select_for_update().get(pk=mug.pk)
        threads = [threading.Thread(target=submit) for _ in range(2)]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
                if cursor.fetchone()[0] >= 2:
                    break
            time.sleep(0.05)
        else:
            pytest.fail("the two checkouts never both waited for the product's lock")
    for thread in threads:
        thread.join(10)
    order = Order.objects.get()
    assert [r.url for r in responses] == [reverse("shop:order", args=[order.pk])] * 2
    assert Product.objects.get(pk=mug.pk).stock == 3
    assert browser.get(reverse("shop:cart")).context["lines"] == []
