"""Every kind of page works under the Content-Security-Policy (shop.csp), in a real Chromium.

The `page` fixture fails any test during which Chromium reported something the policy
blocked, so the storefront's other browser tests (the beacon, campaigns, the cart's "+")
check it too; these visit what they do not: every storefront page, the admin's engine pages
and the API documentation.
"""

import pytest
from django.urls import reverse

from recommendations.models import ApiKey, Campaign, CampaignKind
from shop.models import Product

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_storefront_pages_send_the_policy_and_run_under_it(page, shop, django_user_model):
    django_user_model.objects.create_user("ada", password="ada-password")
    Campaign.objects.create(
        name="Mug week", kind=CampaignKind.PROMOTION, product_ids=[str(p.pk) for p in shop["mug"]]
    )
    mug = shop["mug"][0]
    answer = page.goto("/")
    assert "script-src 'self';" in answer.headers["content-security-policy"]
    page.locator("[data-campaign-id]").first.wait_for()
    page.locator(".tile").first.wait_for()
    for path in ("/category/kitchen/", "/search/?q=tea", mug.store.get_absolute_url()):
        page.goto(path)
        page.locator(".card").first.wait_for()
    page.goto(mug.get_absolute_url())
    page.get_by_test_id("add-to-cart").click()
    page.get_by_text("to your cart").wait_for()
    page.goto("/cart/")
    page.get_by_test_id("checkout").click()
    page.get_by_label("Full name").wait_for()
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Password").fill("ada-password")
    page.get_by_test_id("sign-in").click()
    assert page.get_by_test_id("account-name").inner_text() == "ada"


def test_a_picture_that_cannot_be_loaded_is_replaced_by_the_generated_one(page, shop, live_server):
    mug = shop["mug"][0]
    Product.objects.filter(pk=mug.pk).update(image_url=f"{live_server.url}/static/shop/gone.jpg")
    placeholder = reverse("shop:product_image", args=[mug.pk])
    page.goto(mug.get_absolute_url())
    picture = page.locator(".product-media img")
    page.wait_for_function(
        "([img, src]) => img.getAttribute('src') === src && img.complete && img.naturalWidth > 0",
        arg=[picture.element_handle(), placeholder],
    )
    page.goto("/category/mugs/")
    card = page.locator(f'[data-product-id="{mug.pk}"] img').first
    card.scroll_into_view_if_needed()
    page.wait_for_function(
        "([img, src]) => img.getAttribute('src') === src && img.complete && img.naturalWidth > 0",
        arg=[card.element_handle(), placeholder],
    )


@pytest.mark.usefixtures("admin_page")
def test_the_admins_engine_pages_and_the_api_documentation_run_under_their_policies(page, shop):
    page.goto("/admin/recommendations/dashboard/?days=7")
    page.locator("#events-per-day svg.rec-chart").wait_for()
    page.goto("/admin/recommendations/experiment/add/")
    page.goto(reverse("admin:recommendations_apikey_add"))
    page.get_by_label("Name").fill("Warehouse")
    page.locator("input[name=scopes]").first.check()
    page.get_by_role("button", name="Save", exact=True).click()
    key = page.locator("#raw-key")
    key.focus()
    selected = "el => el.selectionStart === 0 && el.selectionEnd === el.value.length && el.value.length > 0"
    assert key.evaluate(selected), "the new key is selected, ready to copy"
    assert ApiKey.objects.count() == 1

    page.goto("/api/docs/")
    page.locator(".swagger-ui .info .title").get_by_text("Recommendations API").wait_for()
    page.goto("/api/redoc/")
    page.locator("h1").get_by_text("Recommendations API").wait_for()
