"""Text from the shop's catalogue, its staff and its shoppers is shown as text, never as markup."""

import pytest
from django.test import Client
from django.utils import timezone

from recommendations.marketing.audiences import refresh_segment
from recommendations.models import Campaign, Event, Segment
from shop.models import Category, Product, Store

pytestmark = pytest.mark.django_db
SCRIPT = '"><script>alert(1)</script>'
SHOWN = "&lt;script&gt;alert(1)"


def test_names_titles_queries_and_campaign_text_are_escaped_on_every_page(django_user_model):
    """Every storefront page, recommendation block, placeholder picture, the browsable API and
    the engine's admin pages render a script tag planted in each text field as text."""
    category = Category.objects.create(name="Mugs" + SCRIPT)
    store = Store.objects.create(name="Clay" + SCRIPT, slug="clay", description="Kiln" + SCRIPT)
    products = [
        Product.objects.create(
            title=f"Mug {i}{SCRIPT}",
            slug=f"mug-{i}",
            description="Glazed" + SCRIPT,
            brand="Potter" + SCRIPT,
            category=category,
            store=store,
            price=5,
            stock=3,
        )
        for i in range(4)
    ]
    shopper = django_user_model.objects.create_user("ann" + SCRIPT, email="ann@example.com", password="pw")
    now = timezone.now()
    for product in products:
        for event_type in ("view", "add_to_cart", "purchase"):
            Event.objects.create(
                event_type=event_type,
                product_id=str(product.pk),
                user=shopper,
                session_id="s1",
                timestamp=now,
            )
    Event.objects.create(
        event_type="search", query="mug" + SCRIPT, user=shopper, session_id="s1", timestamp=now
    )
    campaign = Campaign.objects.create(
        name="Spring" + SCRIPT,
        discount_text="10% off" + SCRIPT,
        product_ids=[str(products[0].pk)],
        link_url="/",
    )
    segment = refresh_segment(Segment.objects.create(name="Fans" + SCRIPT, campaign=campaign))
    assert segment.size == 1

    browser = Client()
    browser.force_login(shopper)
    browser.post("/cart/add/", {"product": products[0].pk, "quantity": 1})
    staff = Client()
    staff.force_login(django_user_model.objects.create_superuser("boss", "boss@example.com", "pw"))
    admin = "/admin/recommendations"
    pages = {
        browser: [
            "/",
            "/product/mug-0/",
            f"/category/{category.slug}/",
            "/store/clay/",
            "/search/?q=mug" + SCRIPT,
            "/cart/",
            f"/images/products/{products[0].pk}.svg",
            f"/images/stores/{store.pk}.svg",
            "/api/search/?format=api&q=mug" + SCRIPT,
            f"/api/recommendations/similar/{products[0].pk}/?format=api",
            "/api/campaigns/for-me/?format=api",
        ],
        staff: [
            f"{admin}/dashboard/",
            f"{admin}/userpreview/?user={shopper.pk}",
            f"{admin}/userpreview/?user={SCRIPT}",
            f"{admin}/event/",
            f"{admin}/event/?q={SCRIPT}",
            f"{admin}/campaign/",
            f"{admin}/campaign/{campaign.pk}/preview/",
            f"{admin}/segment/{segment.pk}/change/",
            f"{admin}/segmentmember/",
        ],
    }
    for client, urls in pages.items():
        for url in urls:
            response = client.get(url)
            body = response.content.decode()
            assert response.status_code == 200, url
            assert SHOWN in body, url  # the planted text is on the page...
            assert "<script>alert(1)" not in body, url  # ...as text
