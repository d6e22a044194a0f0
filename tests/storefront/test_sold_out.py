"""Sold-out and withdrawn products: their pages, and the carts that hold them."""

from django.urls import reverse

from shop.models import Product
from tests.storefront.test_cart_checkout import add


def test_a_sold_out_product_keeps_its_page_without_an_add_button(client, catalogue):
    sold_out = catalogue[7]
    page = client.get(sold_out.get_absolute_url())
    assert page.status_code == 200
    html = page.content.decode()
    assert "Out of stock" in html and 'data-testid="add-to-cart"' not in html
    Product.objects.filter(pk=sold_out.pk).update(is_active=False)
    assert client.get(sold_out.get_absolute_url()).status_code == 404


def test_the_cart_marks_lines_sold_out_or_short_before_checkout(client, catalogue):
    mug, knife = catalogue[0], catalogue[1]
    add(client, mug, 4)
    add(client, knife, 1)
    Product.objects.filter(pk=mug.pk).update(stock=2)
    Product.objects.filter(pk=knife.pk).update(stock=0)
    page = client.get(reverse("shop:cart"))
    html = page.content.decode()
    assert [line.shortage for line in page.context["lines"]] == [
        "Only 2 left: lower the quantity to check out.",
        "Sold out: remove it to check out.",
    ]
    assert f'id="qty-{mug.pk}" type="number" name="quantity" value="4" min="0" max="2"' in html
    assert 'data-testid="checkout"' not in html and "Change the marked lines" in html


def test_a_product_switched_off_in_a_cart_is_removed_with_a_message(client, catalogue):
    mug, knife = catalogue[0], catalogue[1]
    add(client, mug)
    add(client, knife)
    Product.objects.filter(pk=mug.pk).update(is_active=False)
    page = client.get(reverse("shop:cart"))
    assert [line.product for line in page.context["lines"]] == [knife]
    assert f"{mug.title} is no longer sold and was removed from your cart." in page.content.decode()
    assert "no longer sold" not in client.get(reverse("shop:cart")).content.decode(), "told once"
